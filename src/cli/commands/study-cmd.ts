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

interface StudyOptions extends ModelCliOptions {
  out?: string;
  quick?: boolean;
  seed: number;
  prompts?: string;
  groups?: string;
  json?: boolean;
  overwrite?: boolean;
  neuronIndex?: string;
}

export function register(program: Command): void {
  const study = program
    .command("study")
    .description("reproducible studies that write a self-contained report");
  addModelOptions(
    study
      .command("contractions")
      .description(
        "how GPT-2 predicts contractions: groups of prompts, attribution, patching, statistics → DIR/report.html",
      ),
    "gpt2",
  )
    .requiredOption("-o, --out <dir>", "output directory (report.html, results.json, figures/)")
    .option("--quick", "a smaller run (a few groups and prompts), a few minutes on GPT-2 small")
    .option("--seed <n>", "seed of prompt generation and bootstrap resampling", parseIntOption("seed"), 0)
    .option(
      "--prompts <file>",
      "your own prompt pairs (JSON array or JSONL: clean, corrupted, answer, wrong, group)",
    )
    .option("--groups <list>", "comma-separated groups, e.g. \"'re/they,'s/he\" (default: all)")
    .option(
      "--neuron-index <dir>",
      "a neuron index (circuitscope index): corpus examples on the top neurons' pages",
    )
    .option("--overwrite", "replace an earlier circuitscope report at --out (never other files)")
    .option("--json", "print a JSON summary instead of progress and text")
    .action(async (opts: StudyOptions) => {
      if (!opts.out) throw new UsageError("No output directory: pass --out DIR");
      // Everything that can be wrong with the inputs and outputs fails now, before minutes of model work.
      checkOutputPaths([{ path: opts.out, flag: "--out", kind: "report", overwrite: opts.overwrite }]);
      if (opts.prompts) {
        const { readPromptFile } = await import("../../studies/contractions/prompts.ts");
        readPromptFile(opts.prompts);
      }
      const { makePlan } = await import("../../studies/contractions/plan.ts");
      const { runStudy } = await import("../../studies/contractions/run-study.ts");
      const { writeStudy } = await import("../../studies/contractions/write-study.ts");
      const plan = makePlan({
        quick: opts.quick,
        seed: opts.seed,
        groups: opts.groups?.split(",").map((g) => g.trim()),
      });
      // Opened before the model loads, so a wrong directory fails at once rather than after the run.
      const neuronIndex = opts.neuronIndex
        ? (await import("../../neurons/neuron-index.ts")).NeuronIndex.open(opts.neuronIndex)
        : null;
      const model = await loadModelFromOptions(opts);
      try {
        const results = await runStudy({
          model,
          modelName: opts.model,
          backend: opts.backend,
          plan,
          promptFile: opts.prompts,
          quiet: opts.json,
          neuronIndex,
        });
        const written = await writeStudy(results, opts.out, { overwrite: opts.overwrite });
        if (opts.json) {
          printJson({
            dir: written.dir,
            seconds: results.meta.runSeconds,
            groups: results.groups.map((g) => ({
              name: g.name,
              n: g.n,
              cleanLogitDiff: g.cleanLogitDiff.mean,
              effect: g.contractionEffect.mean,
            })),
            topHeads: results.focus.topHeads?.map((h) => ({ head: h.label, mean: h.mean, se: h.se })),
            significantComparisons: results.comparisons.items.filter((c) => c.significant).length,
            captions: written.captions,
          });
        } else {
          process.stdout.write(
            `Wrote ${written.dir}/report.html, results.json and ${written.figures.length} figures (${results.meta.runSeconds.toFixed(0)} s).\n`,
          );
        }
      } finally {
        model.dispose();
      }
    });
}
