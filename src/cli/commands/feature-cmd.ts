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
    .option(
      "--sae <dir|owner/repo/folder|stories260k/folder>",
      "the SAELens SAE the feature belongs to (a directory, a hub id, or a bundled SAE's short id)",
    )
    .option("-f, --feature <n>", "feature number, 0 .. d_sae-1", parseIntOption("feature"))
    .option(
      "-i, --index <dir>",
      "feature index built by `circuitscope index --sae` (examples and statistics; default: a bundled SAE's own)",
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
      // A bundled SAE (--sae stories260k/blocks.2.hook_resid_pre) brings its own index.
      const { bundledFeatureIndexDir } = await import("../../sae/bundled-saes.ts");
      const indexDir = opts.index ?? bundledFeatureIndexDir(pending.dir) ?? undefined;
      const index = indexDir ? NeuronIndex.open(indexDir) : null;
      if (index && !index.sae) {
        throw new UsageError(
          `${indexDir} is a neuron index: build a feature index with index --sae ${opts.sae} --corpus C --out DIR.`,
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
        const { formatFeaturePage } = await import("../../neurons/neuron-text.ts");
        process.stdout.write(formatFeaturePage(page));
        if (opts.html) process.stdout.write(`Wrote ${opts.html}\n`);
      } finally {
        model.dispose();
      }
    });
}
