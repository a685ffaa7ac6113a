import type { Command } from "commander";
import type { TrainSaeResult } from "../../sae-train/train-sae.ts";
import type { TrainSettings } from "../../sae-train/trainer.ts";
import type { Progress } from "../../util/progress.ts";
import {
  addModelOptions,
  loadModelFromOptions,
  type ModelCliOptions,
  parseIntOption,
  positiveIntOption,
  printJson,
  rejectIgnoredFlags,
  UsageError,
  withCtrlC,
} from "../common.ts";
import { checkOutputPaths } from "../output-paths.ts";

interface SaeTrainCliOptions extends ModelCliOptions {
  hook?: string;
  inputHook?: string;
  outputHook?: string;
  layers?: string;
  architecture: string;
  dSae?: number;
  k: number;
  l1?: number;
  corpus?: string;
  textField: string;
  out?: string;
  tokens: number;
  batchSize: number;
  lr: number;
  seed: number;
  context?: number;
  checkpointEvery: number;
  resume?: boolean;
  overwrite?: boolean;
  json?: boolean;
  activations?: string[];
  shuffleChunks: number;
}

function positiveNumber(name: string) {
  return (value: string): number => {
    const n = Number(value);
    if (!(n > 0) || !Number.isFinite(n))
      throw new UsageError(`--${name} must be a number > 0, got "${value}"`);
    return n;
  };
}

/** `sae train` joins the `sae` command when src/sae's commands made it, else makes it. */
export function saeCommand(program: Command): Command {
  return (
    program.commands.find((c) => c.name() === "sae") ??
    program.command("sae").description("sparse autoencoders (SAELens format): train, inspect, evaluate")
  );
}

/** With --activations the model, hook, corpus and context are the harvest's (its manifest): giving them is a mistake. */
/** The trainer's settings from the command's options: the one mapping, for SAEs and for transcoders. */
async function trainSettings(
  opts: SaeTrainCliOptions,
  own: Pick<TrainSettings, "architecture" | "dSae"> & Partial<TrainSettings>,
): Promise<TrainSettings> {
  const { defaultTrainSettings } = await import("../../sae-train/trainer.ts");
  return defaultTrainSettings({
    tokens: opts.tokens,
    batchSize: opts.batchSize,
    k: opts.k,
    lr: opts.lr,
    seed: opts.seed,
    ...(opts.l1 !== undefined ? { l1: opts.l1 } : {}),
    ...own,
  });
}

function rejectHarvestFlags(cmd: Command): void {
  rejectIgnoredFlags(
    cmd,
    {
      model: "--model",
      hook: "--hook",
      corpus: "--corpus",
      context: "--context",
      textField: "--text-field",
      process: "--no-process",
      offline: "--offline",
      memoryLimit: "--memory-limit",
    },
    "with --activations (the harvest's manifest records the model, hook, corpus and context)",
  );
}

/** The options both training paths take from the command line: output, checkpoints, Ctrl-C, progress. */
function runOptions(
  opts: SaeTrainCliOptions,
  run: { settings: TrainSettings; steps: number; bar: Progress; signal: AbortSignal },
) {
  return {
    settings: run.settings,
    out: opts.out!,
    overwrite: opts.overwrite,
    resume: opts.resume,
    checkpointEvery: opts.checkpointEvery,
    signal: run.signal,
    onStep: () => run.bar.tick(),
    // A line per checkpoint in logs (no bar there); the bar itself says enough on a terminal.
    onCheckpoint: (step: number, path: string) => {
      if (!opts.json && !process.stderr.isTTY)
        process.stderr.write(`checkpoint: step ${step} of ${run.steps} saved to ${path}\n`);
    },
    command: `circuitscope ${process.argv.slice(2).join(" ")}`,
  };
}

/** What a training run says when it stops (Ctrl-C: exit 130, how to resume) or finishes. */
async function reportTraining(
  result: TrainSaeResult,
  opts: SaeTrainCliOptions,
  steps: number,
  from: string,
): Promise<void> {
  if (!result.complete) {
    process.stderr.write(
      `Stopped after step ${result.steps} of ${steps}; checkpoint saved in ${result.checkpoint}. Continue with the same command plus --resume.\n`,
    );
    process.exitCode = 130;
    return;
  }
  const { passesNote } = await import("../../sae-train/train-sae.ts");
  const note = passesNote(result);
  if (opts.json) printJson({ ...result, note });
  else {
    const h = result.heldOut!;
    process.stderr.write(`${note}\n`);
    process.stdout.write(
      `Wrote ${opts.out}${from}: held-out explained variance ${h.explainedVariance.toFixed(4)}, L0 ${h.l0.toFixed(2)}, ` +
        `dead ${(h.deadFraction * 100).toFixed(1)} % (${result.tokensPerSecond.toFixed(0)} tokens/s). Curves: ${opts.out}/training.html\n`,
    );
  }
}

async function trainOnShards(opts: SaeTrainCliOptions, settings: TrainSettings): Promise<void> {
  const { trainSaeFromShards } = await import("../../sae-train/train-from-shards.ts");
  const { openActivationShards } = await import("../../sae-train/shard-reader.ts");
  const { getKernels } = await import("../../tensor/select-kernels.ts");
  const { totalSteps } = await import("../../sae-train/trainer.ts");
  // Refused here, naming the shard, before anything is trained or written.
  try {
    openActivationShards(opts.activations!);
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  const { createProgress } = await import("../../util/progress.ts");
  const steps = totalSteps(settings);
  const bar = createProgress({ label: "Training", total: steps, quiet: opts.json, unit: "steps" });
  try {
    const result = await withCtrlC((signal) =>
      trainSaeFromShards({
        activations: opts.activations!,
        kernels: getKernels(opts.backend),
        bufferChunks: opts.shuffleChunks,
        ...runOptions(opts, { settings, steps, bar, signal }),
      }),
    );
    bar.stop();
    await reportTraining(result, opts, steps, ` from ${result.shards.length} activation shards`);
  } finally {
    bar.stop();
  }
}

export function register(program: Command): void {
  addModelOptions(
    saeCommand(program)
      .command("train")
      .description(
        "train a sparse autoencoder on a hook's activations (topk, batchtopk, jumprelu, standard) and write a SAELens-6 directory with its training log, page and held-out metrics",
      ),
    "stories260k",
  )
    .option("--hook <name>", "the hook to read, e.g. blocks.2.hook_resid_pre")
    .option(
      "--activations <dirs...>",
      "train on the shards of sae harvest (their directories, or the one holding them), streamed from disk, instead of --model/--hook/--corpus",
    )
    .option(
      "--shuffle-chunks <n>",
      "with --activations: chunks loaded and shuffled together (the shuffle buffer)",
      positiveIntOption("shuffle-chunks"),
      8,
    )
    .option(
      "--input-hook <name>",
      "a transcoder: the hook its features read, e.g. blocks.2.ln2.hook_normalized (block-relative with --layers)",
    )
    .option(
      "--output-hook <name>",
      "a transcoder: the hook it predicts, e.g. blocks.2.hook_mlp_out (block-relative with --layers)",
    )
    .option(
      "--layers <list>",
      "transcoders: 'all' or blocks such as 0,1,3, one per layer in one run (--input-hook/--output-hook block-relative)",
    )
    .option("--architecture <name>", "topk | batchtopk (saved as jumprelu) | jumprelu | standard", "topk")
    .option("--d-sae <n>", "number of features", positiveIntOption("d-sae"))
    .option("--k <n>", "topk / batchtopk: active features per token", positiveIntOption("k"), 8)
    .option("--l1 <c>", "standard: L1 coefficient; jumprelu: L0 coefficient", positiveNumber("l1"))
    .option("-c, --corpus <src>", "a .jsonl file (text field), a .txt file or folder, or a built-in corpus")
    .option("--text-field <name>", "JSONL field holding the text", "text")
    .option("-o, --out <dir>", "the SAELens directory to write")
    .option(
      "--tokens <n>",
      "activations to train on (cycling over the harvest when the corpus is smaller)",
      positiveIntOption("tokens"),
      12_288_000,
    )
    .option("--batch-size <n>", "activations per step", positiveIntOption("batch-size"), 4096)
    .option("--lr <x>", "Adam learning rate (after warm-up, before decay)", positiveNumber("lr"), 4e-4)
    .option("--seed <n>", "initialisation and shuffling seed", parseIntOption("seed"), 0)
    .option(
      "--context <n>",
      "tokens per text, BOS included (default: the model's context, at most 512)",
      positiveIntOption("context"),
    )
    .option("--checkpoint-every <n>", "steps between checkpoints", positiveIntOption("checkpoint-every"), 250)
    .option("--resume", "continue the run whose checkpoint is beside --out")
    .option("--overwrite", "replace an earlier SAE directory that circuitscope wrote at --out")
    .option("--json", "print only JSON (and no progress bar)")
    .action(async (opts: SaeTrainCliOptions, cmd: Command) => {
      const { ARCHITECTURES } = await import("../../sae-train/sae-loss.ts");
      const arch = opts.architecture as (typeof ARCHITECTURES)[number];
      if (!ARCHITECTURES.includes(arch))
        throw new UsageError(
          `Unknown --architecture "${opts.architecture}": use one of ${ARCHITECTURES.join(", ")}`,
        );
      if (opts.inputHook !== undefined || opts.outputHook !== undefined || opts.layers !== undefined) {
        if (opts.activations)
          throw new UsageError(
            "--activations trains an SAE from harvested shards; transcoders (--input-hook/--output-hook/--layers) harvest their own: drop one of them",
          );
        return trainTranscodersAction(opts, cmd);
      }
      if (opts.activations) rejectHarvestFlags(cmd);
      else if (!opts.hook) throw new UsageError("No hook: pass --hook, e.g. --hook blocks.2.hook_resid_pre");
      if (!opts.dSae)
        throw new UsageError("No size: pass --d-sae N (the number of features), e.g. --d-sae 512");
      if (!opts.corpus && !opts.activations)
        throw new UsageError("No corpus: pass --corpus FILE.jsonl (e.g. one made by `corpus sample`)");
      if (!opts.out) throw new UsageError("No output: pass --out DIR (a new directory)");
      if ((arch === "topk" || arch === "batchtopk") && opts.k > opts.dSae)
        throw new UsageError(`--k ${opts.k} is more than --d-sae ${opts.dSae}: choose k <= d_sae`);
      if (cmd.getOptionValueSource("l1") === "cli" && (arch === "topk" || arch === "batchtopk"))
        throw new UsageError(`--l1 has no effect with --architecture ${arch} (its sparsity is k): drop it`);
      if (cmd.getOptionValueSource("k") === "cli" && (arch === "jumprelu" || arch === "standard"))
        throw new UsageError(`--k has no effect with --architecture ${arch} (its sparsity is --l1): drop it`);
      checkOutputPaths([{ path: opts.out, flag: "--out", kind: "report", overwrite: opts.overwrite }]);
      const { checkpointProblem, trainSae } = await import("../../sae-train/train-sae.ts");
      const problem = checkpointProblem(opts.out, opts.resume ?? false);
      if (problem) throw new UsageError(problem);
      const { totalSteps } = await import("../../sae-train/trainer.ts");
      const settings = await trainSettings(opts, { architecture: arch, dSae: opts.dSae });
      if (opts.activations) return trainOnShards(opts, settings);
      const { openCorpus } = await import("../../corpus/sources.ts");
      const source = openCorpus(opts.corpus!, { textField: opts.textField });
      const model = await loadModelFromOptions(opts);
      const { validateHookName } = await import("../../model/hook-points.ts");
      try {
        validateHookName(opts.hook!, model.cfg);
      } catch (err) {
        model.dispose();
        throw new UsageError((err as Error).message);
      }
      const { createProgress } = await import("../../util/progress.ts");
      const steps = totalSteps(settings);
      const bar = createProgress({ label: "Training", total: steps, quiet: opts.json, unit: "steps" });
      const context = opts.context ?? Math.min(model.cfg.nCtx, 512);
      try {
        const result = await withCtrlC((signal) =>
          trainSae({
            model,
            modelName: opts.model,
            hook: opts.hook!,
            corpus: source,
            context,
            ...runOptions(opts, { settings, steps, bar, signal }),
          }),
        );
        bar.stop();
        await reportTraining(result, opts, steps, "");
      } finally {
        bar.stop();
        model.dispose();
      }
    });
}

/** The blocks of `--layers`: "all" or a comma-separated list, checked against the model's depth. */
export function parseLayerList(text: string, nLayers: number): number[] {
  if (text.trim() === "all") return Array.from({ length: nLayers }, (_, l) => l);
  const layers = text.split(",").map((part) => {
    const n = Number(part.trim());
    if (part.trim() === "" || !Number.isInteger(n) || n < 0)
      throw new UsageError(`Bad --layers "${text}": write all, or block numbers such as 0,1,3`);
    if (n >= nLayers)
      throw new UsageError(`--layers: block ${n} does not exist (the model has blocks 0..${nLayers - 1})`);
    return n;
  });
  if (new Set(layers).size !== layers.length) throw new UsageError(`--layers "${text}" names a block twice`);
  return layers.sort((a, b) => a - b);
}

/** `sae train --input-hook H_in --output-hook H_out [--layers all]`: a circuit-tracer transcoder set. */
async function trainTranscodersAction(opts: SaeTrainCliOptions, cmd: Command): Promise<void> {
  const { TRANSCODER_ARCHITECTURES, blockHook, transcoderCheckpointProblem, trainTranscoders } = await import(
    "../../sae-train/train-transcoders.ts"
  );
  const { parseHookName, validateHookName } = await import("../../model/hook-points.ts");
  if (opts.hook !== undefined)
    throw new UsageError(
      "--hook trains an SAE; a transcoder reads --input-hook and predicts --output-hook: drop --hook",
    );
  if (!opts.inputHook || !opts.outputHook)
    throw new UsageError(
      "A transcoder needs both --input-hook and --output-hook, e.g. --input-hook ln2.hook_normalized --output-hook hook_mlp_out --layers all",
    );
  // topk (the SAE default) has no circuit-tracer form: a k-sparse transcoder trains as batchtopk.
  const arch = cmd.getOptionValueSource("architecture") === "cli" ? opts.architecture : "batchtopk";
  if (!(TRANSCODER_ARCHITECTURES as readonly string[]).includes(arch))
    throw new UsageError(
      `--architecture ${arch}: circuit-tracer transcoders are ReLU or JumpReLU, so use ${TRANSCODER_ARCHITECTURES.join(", ")} (batchtopk, the default here, keeps k per token on average and is saved as JumpReLU)`,
    );
  if (!opts.dSae) throw new UsageError("No size: pass --d-sae N (features per layer), e.g. --d-sae 1024");
  if (!opts.corpus)
    throw new UsageError("No corpus: pass --corpus FILE.jsonl (e.g. one made by `corpus sample`)");
  if (!opts.out) throw new UsageError("No output: pass --out DIR (a new directory for the transcoder set)");
  if (arch === "batchtopk" && opts.k > opts.dSae)
    throw new UsageError(`--k ${opts.k} is more than --d-sae ${opts.dSae}: choose k <= d_sae`);
  if (cmd.getOptionValueSource("l1") === "cli" && arch === "batchtopk")
    throw new UsageError("--l1 has no effect with --architecture batchtopk (its sparsity is k): drop it");
  if (cmd.getOptionValueSource("k") === "cli" && arch !== "batchtopk")
    throw new UsageError(`--k has no effect with --architecture ${arch} (its sparsity is --l1): drop it`);
  // Without --layers the hooks are full names of one block: that block is the only layer.
  let inputHook = opts.inputHook;
  let outputHook = opts.outputHook;
  let layerSpec = opts.layers;
  if (layerSpec === undefined) {
    const a = parseHookName(inputHook);
    const b = parseHookName(outputHook);
    if (a.layer === null || b.layer === null || a.layer !== b.layer)
      throw new UsageError(
        `--input-hook ${inputHook} and --output-hook ${outputHook} must be hooks of one block (e.g. blocks.2.ln2.hook_normalized and blocks.2.hook_mlp_out), or block-relative with --layers all`,
      );
    inputHook = a.hook;
    outputHook = b.hook;
    layerSpec = String(a.layer);
  } else if (/^blocks\.\d+\./.test(inputHook) || /^blocks\.\d+\./.test(outputHook))
    throw new UsageError(
      "With --layers the hooks are block-relative, as circuit-tracer's config names them: e.g. --input-hook ln2.hook_normalized --output-hook hook_mlp_out",
    );
  checkOutputPaths([{ path: opts.out, flag: "--out", kind: "report", overwrite: opts.overwrite }]);
  const { openCorpus } = await import("../../corpus/sources.ts");
  const source = openCorpus(opts.corpus, { textField: opts.textField });
  const { totalSteps } = await import("../../sae-train/trainer.ts");
  const settings = await trainSettings(opts, {
    architecture: arch as (typeof TRANSCODER_ARCHITECTURES)[number],
    dSae: opts.dSae,
    applyBDecToInput: false,
  });
  const model = await loadModelFromOptions(opts);
  const { createProgress } = await import("../../util/progress.ts");
  let bar: ReturnType<typeof createProgress> | undefined;
  try {
    const layers = parseLayerList(layerSpec, model.cfg.nLayers);
    for (const l of layers)
      for (const h of [inputHook, outputHook]) {
        try {
          validateHookName(blockHook(l, h), model.cfg);
        } catch (err) {
          throw new UsageError((err as Error).message);
        }
      }
    const problem = transcoderCheckpointProblem(opts.out, layers, opts.resume ?? false);
    if (problem) throw new UsageError(problem);
    const steps = totalSteps(settings);
    bar = createProgress({
      label: `Training ${layers.length} transcoder${layers.length > 1 ? "s" : ""}`,
      total: steps * layers.length,
      quiet: opts.json,
      unit: "steps",
    });
    const context = opts.context ?? Math.min(model.cfg.nCtx, 512);
    const result = await withCtrlC((signal) =>
      trainTranscoders({
        model,
        modelName: opts.model,
        layers,
        featureInputHook: inputHook,
        featureOutputHook: outputHook,
        corpus: source,
        context,
        settings,
        out: opts.out!,
        overwrite: opts.overwrite,
        resume: opts.resume,
        checkpointEvery: opts.checkpointEvery,
        signal,
        onStep: () => bar!.tick(),
        onCheckpoint: (layer, step, path) => {
          if (!opts.json && !process.stderr.isTTY)
            process.stderr.write(`checkpoint: layer ${layer}, step ${step} of ${steps} saved to ${path}\n`);
        },
        command: `circuitscope ${process.argv.slice(2).join(" ")}`,
      }),
    );
    bar.stop();
    if (!result.complete) {
      const last = result.layers.at(-1);
      process.stderr.write(
        `Stopped in layer ${last?.layer} after step ${last?.steps} of ${steps}; checkpoints saved beside ${opts.out} (${result.checkpoints[0]} …). Continue with the same command plus --resume.\n`,
      );
      process.exitCode = 130;
      return;
    }
    if (opts.json) printJson(result);
    else
      process.stdout.write(
        `Wrote ${opts.out} (circuit-tracer transcoder set). Held-out explained variance of ${outputHook}: ${result.layers
          .map(
            (r) =>
              `layer ${r.layer} ${r.heldOut!.explainedVariance.toFixed(4)} (L0 ${r.heldOut!.l0.toFixed(1)})`,
          )
          .join(", ")}\n`,
      );
  } finally {
    bar?.stop();
    model.dispose();
  }
}
