import type { Command } from "commander";
import type { FeaturePageData } from "../../neurons/feature-page.ts";
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
  transcoders?: string;
  layer?: number;
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
        "an SAE or transcoder feature's page: top examples, quantile groups, density, histogram, direct logit effect, activations on your text",
      ),
  )
    .option(
      "--sae <dir|owner/repo/folder|stories260k/folder>",
      "the SAELens SAE the feature belongs to (a directory, a hub id, or a bundled SAE's short id)",
    )
    .option(
      "--transcoders <dir|config.yaml>",
      "a circuit-tracer transcoder set: the page of feature --feature of layer --layer's transcoder",
    )
    .option(
      "--layer <n>",
      "with --transcoders: the layer whose transcoder the feature belongs to",
      parseIntOption("layer"),
    )
    .option("-f, --feature <n>", "feature number, 0 .. d_sae-1", parseIntOption("feature"))
    .option(
      "-i, --index <dir>",
      "feature index built by `circuitscope index --sae` or `index --transcoders` (examples and statistics; default: a bundled SAE's own, or DIR/feature-index with --transcoders when present)",
    )
    .option("-t, --text <text>", "also show the feature's activation on every token of this text")
    .option("--html <file>", "write the page as a self-contained HTML report")
    .option("--json", "print only the page data as JSON")
    .action(async (opts: FeatureCliOptions) => {
      if (opts.transcoders) return transcoderFeature(opts);
      if (opts.layer !== undefined)
        throw new UsageError("--layer goes with --transcoders; an SAE has one hook.");
      if (!opts.sae)
        throw new UsageError(
          "Which SAE or transcoders? Pass --sae DIR (an SAELens directory) or --transcoders DIR --layer L.",
        );
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
        await printFeaturePage(page, opts);
      } finally {
        model.dispose();
      }
    });
}

/** `feature --transcoders DIR --layer L --feature F`: the page of a transcoder feature (a graph's feature node). */
async function transcoderFeature(opts: FeatureCliOptions): Promise<void> {
  if (opts.sae) throw new UsageError("Pass --sae or --transcoders, not both.");
  if (opts.layer === undefined) throw new UsageError("Which layer? Pass --layer L with --transcoders.");
  if (opts.feature === undefined) throw new UsageError("Which feature? Pass --feature N, e.g. --feature 12");
  checkOutputPaths([{ path: opts.html, flag: "--html", kind: "file" }]);
  const { loadGraphInputs } = await import("./graph-cmd.ts");
  const { set, model } = await loadGraphInputs(opts);
  try {
    const { defaultTranscoderIndex } = await import("../../neurons/feature-page.ts");
    const indexDir = opts.index ?? defaultTranscoderIndex(opts.transcoders as string);
    const { NeuronIndex } = await import("../../neurons/neuron-index.ts");
    const index = indexDir ? NeuronIndex.open(indexDir) : null;
    const { transcoderFeaturePageData } = await import("../../neurons/feature-page.ts");
    let page: FeaturePageData;
    try {
      page = transcoderFeaturePageData(model, set, opts.layer, opts.feature, {
        index,
        text: opts.text,
        setName: opts.transcoders,
        modelName: opts.model,
      });
    } catch (e) {
      throw new UsageError((e as Error).message);
    }
    await printFeaturePage(page, opts);
  } finally {
    model.dispose();
  }
}

async function printFeaturePage(page: FeaturePageData, opts: FeatureCliOptions): Promise<void> {
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
}
