import type { Command } from "commander";
import {
  addModelOptions,
  loadModelFromOptions,
  type ModelCliOptions,
  parseIntOption,
  printJson,
  UsageError,
} from "../common.ts";
import { checkOutputPaths } from "../output-paths.ts";

interface FeatureCliOptions extends ModelCliOptions {
  sae?: string;
  feature?: number;
  index?: string;
  text?: string;
  html?: string;
  json?: boolean;
}

export function register(program: Command): void {
  addModelOptions(
    program
      .command("feature")
      .description(
        "an SAE feature's page: top examples, quantile groups, density, histogram, direct logit effect, activations on your text",
      ),
  )
    .option("--sae <dir|owner/repo/folder>", "the SAELens SAE the feature belongs to")
    .option("-f, --feature <n>", "feature number, 0 .. d_sae-1", parseIntOption("feature"))
    .option(
      "-i, --index <dir>",
      "feature index built by `circuitscope index --sae` (examples and statistics)",
    )
    .option("-t, --text <text>", "also show the feature's activation on every token of this text")
    .option("--html <file>", "write the page as a self-contained HTML report")
    .option("--json", "print only the page data as JSON")
    .action(async (opts: FeatureCliOptions) => {
      if (!opts.sae) throw new UsageError("Which SAE? Pass --sae DIR (an SAELens directory).");
      if (opts.feature === undefined)
        throw new UsageError("Which feature? Pass --feature N, e.g. --feature 12");
      const { prepareSae, loadPreparedSae } = await import("../sae-options.ts");
      const pending = (await prepareSae({ sae: opts.sae, steer: [], ablate: [], offline: opts.offline }))!;
      if (opts.feature < 0 || opts.feature >= pending.cfg.dSae) {
        throw new UsageError(
          `--feature ${opts.feature}: the SAE has features 0..${pending.cfg.dSae - 1} (d_sae ${pending.cfg.dSae}).`,
        );
      }
      const { NeuronIndex } = await import("../../neurons/neuron-index.ts");
      const index = opts.index ? NeuronIndex.open(opts.index) : null;
      if (index && !index.sae) {
        throw new UsageError(
          `${opts.index} is a neuron index: build a feature index with index --sae ${opts.sae} --corpus C --out DIR.`,
        );
      }
      checkOutputPaths([{ path: opts.html, flag: "--html", kind: "file" }]);
      const model = await loadModelFromOptions(opts);
      try {
        const sae = await loadPreparedSae(pending, model);
        const { featurePageData } = await import("../../neurons/feature-page.ts");
        const page = featurePageData(model, sae, opts.feature, {
          index,
          text: opts.text,
          saeName: opts.sae,
          modelName: opts.model,
        });
        if (opts.html) {
          const { writeFeatureReport } = await import("../../neurons/feature-report.ts");
          writeFeatureReport(opts.html, page);
        }
        if (opts.json) {
          printJson(page);
          return;
        }
        const fmt = (x: number) => x.toPrecision(3);
        const lines = [`SAE feature ${page.feature} (${page.sae} at ${page.hook}), model ${page.model}`];
        if (page.index) {
          lines.push(`Density ${(100 * page.index.density).toFixed(2)}% of ${page.index.tokens} tokens`);
          for (const e of page.index.examples) {
            const [a, b] = e.window;
            lines.push(
              `  ${fmt(e.value)}  ${e.strTokens.slice(a, e.position).join("")}[[${e.strTokens[e.position]}]]${e.strTokens.slice(e.position + 1, b).join("")}`,
            );
          }
        }
        if (page.logitEffect) {
          lines.push(`Promotes: ${page.logitEffect.top.map((t) => JSON.stringify(t.str)).join(" ")}`);
          lines.push(`Suppresses: ${page.logitEffect.bottom.map((t) => JSON.stringify(t.str)).join(" ")}`);
        }
        if (opts.html) lines.push(`Wrote ${opts.html}`);
        process.stdout.write(`${lines.join("\n")}\n`);
      } finally {
        model.dispose();
      }
    });
}
