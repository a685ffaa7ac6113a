import type { Command } from "commander";
import type { StudySpec } from "../../studies/spec.ts";
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
  focus?: string;
  json?: boolean;
  overwrite?: boolean;
  neuronIndex?: string;
}

/** Options every study shares; `custom` requires --prompts, the others accept it. */
function studyOptions(cmd: Command, defaultModel: string, promptsRequired: boolean): Command {
  addModelOptions(cmd, defaultModel)
    .requiredOption("-o, --out <dir>", "output directory (report.html, results.json, figures/)")
    .option("--quick", "a smaller run (fewer groups and prompts)")
    .option("--seed <n>", "seed of prompt generation and bootstrap resampling", parseIntOption("seed"), 0);
  const prompts = "pairs file (JSON array or JSONL: clean, corrupted, answer, wrong, group)";
  if (promptsRequired) cmd.requiredOption("--prompts <file>", prompts);
  else cmd.option("--prompts <file>", `your own ${prompts} instead of the generated ones`);
  return cmd
    .option("--groups <list>", "comma-separated groups to run (default: all)")
    .option(
      "--neuron-index <dir>",
      "a neuron index (circuitscope index): corpus examples on the top neurons' pages",
    )
    .option("--overwrite", "replace an earlier circuitscope report at --out (never other files)")
    .option("--json", "print a JSON summary instead of progress and text");
}

async function runStudyCommand(spec: StudySpec, opts: StudyOptions): Promise<void> {
  if (!opts.out) throw new UsageError("No output directory: pass --out DIR");
  // Everything that can be wrong with the inputs and outputs fails now, before minutes of model work.
  checkOutputPaths([{ path: opts.out, flag: "--out", kind: "report", overwrite: opts.overwrite }]);
  if (opts.prompts) {
    const { readPromptFile } = await import("../../studies/prompts.ts");
    readPromptFile(opts.prompts);
  }
  const { planFor } = await import("../../studies/spec.ts");
  const { runStudy } = await import("../../studies/pipeline.ts");
  const { writeStudy } = await import("../../studies/write-study.ts");
  let plan: ReturnType<typeof planFor>;
  try {
    plan = planFor(spec, {
      quick: opts.quick,
      seed: opts.seed,
      groups: opts.groups?.split(",").map((g) => g.trim()),
    });
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
  const neuronIndex = opts.neuronIndex
    ? (await import("../../neurons/neuron-index.ts")).NeuronIndex.open(opts.neuronIndex)
    : null;
  const model = await loadModelFromOptions(opts);
  try {
    const results = await runStudy({
      model,
      modelName: opts.model,
      backend: opts.backend,
      spec,
      plan,
      promptFile: opts.prompts,
      quiet: opts.json,
      notice: (text) => process.stderr.write(text),
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
          effect: g.effect.mean,
          analysed: g.analysed,
          normalised: g.normalised,
        })),
        topHeads: results.focus.topHeads?.map((h) => ({ head: h.label, mean: h.mean, se: h.se })),
        significantComparisons: results.comparisons.items.filter((c) => c.significant).length,
        findings: results.findings?.map((f) => f.text),
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
}

export function register(program: Command): void {
  const study = program
    .command("study")
    .description("reproducible studies that write a self-contained report");
  studyOptions(
    study
      .command("contractions")
      .description(
        "how GPT-2 predicts contractions: groups of prompts, attribution, patching, statistics → DIR/report.html",
      ),
    "gpt2",
    false,
  ).action(async (opts: StudyOptions) => {
    const { contractionsSpec } = await import("../../studies/contractions/spec.ts");
    await runStudyCommand(contractionsSpec, opts);
  });
  studyOptions(
    study
      .command("pronouns")
      .description(
        "how the bundled stories260k model carries a character's gender to the pronoun it predicts (offline) → DIR/report.html",
      ),
    "stories260k",
    false,
  ).action(async (opts: StudyOptions) => {
    const { pronounsSpec } = await import("../../studies/pronouns/spec.ts");
    await runStudyCommand(pronounsSpec, opts);
  });
  studyOptions(
    study
      .command("custom")
      .description("the study pipeline on your own pairs, with the groups your file names → DIR/report.html"),
    "gpt2",
    true,
  )
    .option("--focus <group>", "the group studied in depth (default: the file's first group)")
    .action(async (opts: StudyOptions) => {
      const { customSpec } = await import("../../studies/custom.ts");
      let spec: StudySpec;
      try {
        spec = customSpec(opts.prompts!, { focus: opts.focus, model: opts.model });
      } catch (e) {
        throw new UsageError((e as Error).message);
      }
      await runStudyCommand(spec, opts);
    });
}
