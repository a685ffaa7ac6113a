/**
 * `sae train` as a library call: harvest once, train with checkpoints (Ctrl-C keeps the last one and
 * `resume` continues it bit for bit), evaluate on held-out text, and write a SAELens-6 directory (through
 * src/sae's writer) with the training log, its page and the metrics beside the SAELens files.
 */
import { existsSync } from "node:fs";
import { join } from "node:path";
import type { DocumentSource } from "../corpus/sources.ts";
import type { HookedTransformer } from "../model/hooked-transformer.ts";
import { Sae } from "../sae/sae.ts";
import type { SaeConfig } from "../sae/sae-config.ts";
import { type SaeLensDirContents, writeSaeLensDir } from "../sae/saelens-dir.ts";
import type { Kernels } from "../tensor/kernels.ts";
import { writeFileAtomic } from "../util/atomic-write.ts";
import {
  checkpointPath,
  isOurCheckpoint,
  loadCheckpoint,
  removeCheckpoint,
  saveCheckpoint,
} from "./checkpoint.ts";
import { type ActivationBuffer, harvestActivations, tokenSequences } from "./harvest.ts";
import { evaluateSae, type HeldOutMetrics } from "./held-out.ts";
import type { ArrayOps, SaeDims } from "./sae-loss.ts";
import {
  dimsOf,
  FLOAT32_OPS,
  initTrainState,
  type StepEngine,
  type StepLog,
  stepEngine,
  type TrainInput,
  type TrainSettings,
  type TrainState,
  totalSteps,
  trainSteps,
} from "./trainer.ts";
import { writeTrainingPage } from "./training-page.ts";

/** Steps run between looks at the event loop (where Ctrl-C arrives). */
const YIELD_EVERY_STEPS = 4;

/** Every tenth text (index ≡ 9 mod 10) is held out for evaluation, never trained on. */
export const HELD_OUT_EVERY = 10;

export interface TrainSaeOptions {
  model: HookedTransformer;
  /** As the user named it (recorded in cfg.json's metadata.model_name). */
  modelName: string;
  hook: string;
  corpus: DocumentSource;
  /** Tokens per text, BOS included. */
  context: number;
  settings: TrainSettings;
  out: string;
  overwrite?: boolean;
  resume?: boolean;
  /** Steps between checkpoints (and one when stopped). */
  checkpointEvery?: number;
  signal?: AbortSignal;
  onHarvest?: (rows: number) => void;
  onStep?: (log: StepLog) => void;
  /** After each checkpoint is written. */
  onCheckpoint?: (step: number, path: string) => void;
  /** The command line, for the page and the metrics file. */
  command?: string;
}

export interface TrainSaeResult {
  /** False when stopped (Ctrl-C): the checkpoint holds the state. */
  complete: boolean;
  steps: number;
  trainTokens: number;
  harvestRows: number;
  heldOutRows: number;
  /** Passes over the harvest that the token budget needed (> 1: it cycled). */
  passes: number;
  /** Held-out metrics (the density per feature is in the directory's sparsity.safetensors). */
  heldOut: Omit<HeldOutMetrics, "logDensity"> | null;
  tokensPerSecond: number;
  /** The step's implementation (`stepEngine`): the graph and the loops round differently. */
  stepEngine: StepEngine;
  checkpoint: string;
  out: string;
}

/** The texts, tokenized and cut, split into training and held-out sequences. */
export function splitSequences(
  model: HookedTransformer,
  corpus: DocumentSource,
  context: number,
): { train: number[][]; heldOut: number[][] } {
  const train: number[][] = [];
  const heldOut: number[][] = [];
  let i = 0;
  for (const seq of tokenSequences(model, corpus.documents(), context))
    (i++ % HELD_OUT_EVERY === HELD_OUT_EVERY - 1 ? heldOut : train).push(seq);
  if (train.length === 0 || heldOut.length === 0)
    throw new Error(
      `The corpus ${corpus.name} gives ${train.length + heldOut.length} texts; training needs at least ${HELD_OUT_EVERY} (every ${HELD_OUT_EVERY}th is held out for evaluation).`,
    );
  return { train, heldOut };
}

/** What identifies a run: a checkpoint is resumed only by the same one. */
export function runFingerprint(
  o: Pick<TrainSaeOptions, "modelName" | "hook" | "context" | "settings">,
  corpus: string,
  rows: number,
): string {
  return JSON.stringify({
    model: o.modelName,
    hook: o.hook,
    corpus,
    context: o.context,
    rows,
    settings: o.settings,
  });
}

/** The SAELens directory of a trained state: BatchTopK is saved as JumpReLU with its threshold, as SAELens does. */
export function trainedSaeContents(
  state: TrainState,
  s: TrainSettings,
  dims: SaeDims,
  meta: { hook: string; modelName: string; context: number },
): SaeLensDirContents {
  const p = state.params;
  const architecture = s.architecture === "batchtopk" ? "jumprelu" : s.architecture;
  const cfg: SaeConfig = {
    architecture,
    dIn: dims.dIn,
    dSae: dims.dSae,
    ...(architecture === "topk" ? { k: s.k } : {}),
    dtype: "float32",
    applyBDecToInput: s.applyBDecToInput,
    normalizeActivations: "none",
    reshapeActivations: meta.hook.endsWith("attn.hook_z") ? "hook_z" : "none",
    hookName: meta.hook,
    metadata: { model_name: meta.modelName, prepend_bos: true, context_size: meta.context },
  };
  const weights: SaeLensDirContents["weights"] = {
    W_enc: p.W_enc,
    b_enc: p.b_enc,
    W_dec: p.W_dec,
    b_dec: p.b_dec,
  };
  if (s.architecture === "jumprelu") weights.threshold = p.log_threshold!.map(Math.exp);
  if (s.architecture === "batchtopk") {
    if (!Number.isFinite(state.thresholdEma))
      throw new Error("BatchTopK kept no activation during training, so it has no threshold to save");
    weights.threshold = new Float32Array(dims.dSae).fill(state.thresholdEma);
  }
  return { cfg, weights };
}

function harvestOne(
  model: HookedTransformer,
  seqs: number[][],
  hook: string,
  opts: TrainSaeOptions,
  maxTokens?: number,
): ActivationBuffer {
  return harvestActivations(model, seqs, {
    hooks: [hook],
    maxTokens,
    signal: opts.signal,
    onProgress: opts.onHarvest,
  })[0];
}

/** Refuses, before any work, a checkpoint that `resume` cannot use or that a fresh run would clobber. */
export function checkpointProblem(out: string, resume: boolean): string | null {
  const ckpt = checkpointPath(out);
  const exists = existsSync(ckpt);
  if (exists && !isOurCheckpoint(ckpt))
    return `${ckpt} exists and is not a circuitscope checkpoint: move it away (training keeps its checkpoint there).`;
  if (resume && !exists)
    return `--resume: there is no checkpoint ${ckpt} to continue; drop --resume to start afresh.`;
  if (!resume && exists)
    return `An interrupted run left its checkpoint ${ckpt}: add --resume to continue it, or delete the file to start afresh.`;
  return null;
}

export interface CheckpointedRunOptions {
  ops: ArrayOps<Float32Array>;
  checkpoint: string;
  fingerprint: string;
  /** Steps between checkpoints (and one at the end, and one when stopped); default 250. */
  every?: number;
  signal?: AbortSignal;
  onStep?: (log: StepLog) => void;
  onCheckpoint?: (step: number, path: string) => void;
}

/**
 * Runs `state` to the end of its run (or until the signal), a few steps at a time with a turn of the event
 * loop between them (so that a Ctrl-C is seen within a few steps), writing the checkpoint every `every` steps,
 * at the end and when stopped. An SAE and every layer of a transcoder set train through this one loop.
 */
export async function runWithCheckpoints(
  state: TrainState,
  data: TrainInput,
  s: TrainSettings,
  o: CheckpointedRunOptions,
): Promise<void> {
  const every = o.every ?? 250;
  const steps = totalSteps(s);
  while (state.step < steps && !o.signal?.aborted) {
    const nextCheckpoint = (Math.floor(state.step / every) + 1) * every;
    trainSteps(state, data, s, {
      ops: o.ops,
      untilStep: Math.min(steps, nextCheckpoint, state.step + YIELD_EVERY_STEPS),
      signal: o.signal,
      onStep: (log) => o.onStep?.(log),
    });
    await new Promise((r) => setImmediate(r));
    if (state.step % every === 0 || state.step === steps || o.signal?.aborted) {
      saveCheckpoint(o.checkpoint, state, o.fingerprint);
      o.onCheckpoint?.(state.step, o.checkpoint);
    }
  }
}

export async function trainSae(opts: TrainSaeOptions): Promise<TrainSaeResult> {
  const { model, settings: s } = opts;
  const problem = checkpointProblem(opts.out, opts.resume ?? false);
  if (problem) throw new Error(problem);
  const { train, heldOut } = splitSequences(model, opts.corpus, opts.context);
  const x = harvestOne(model, train, opts.hook, opts, s.tokens);
  const heldOutX = harvestOne(model, heldOut, opts.hook, opts);
  return trainAndWrite(
    { ...opts, kernels: model.kernels, corpusName: opts.corpus.name },
    { input: { x, y: x }, heldOutX, fingerprint: runFingerprint(opts, opts.corpus.name, x.rows) },
  );
}

/** What training needs besides its input: the run's identity and output, without a model or a corpus. */
export type TrainJobOptions = Omit<TrainSaeOptions, "model" | "corpus"> & {
  kernels: Kernels;
  /** Recorded in training.json. */
  corpusName: string;
};

/** Trains on `input` (checkpointed, resumable), evaluates on `heldOutX`, writes the SAELens directory. */
export async function trainAndWrite(
  opts: TrainJobOptions,
  run: { input: TrainInput; heldOutX: ActivationBuffer; fingerprint: string },
): Promise<TrainSaeResult> {
  const { settings: s } = opts;
  const { input: data, heldOutX } = run;
  const dims: SaeDims = dimsOf(data, s.dSae);
  const ckpt = checkpointPath(opts.out);
  const fingerprint = run.fingerprint;
  const state = opts.resume ? loadCheckpoint(ckpt, fingerprint) : initTrainState(data, s);
  const rows = "x" in data ? data.x.rows : data.rows;
  const steps = totalSteps(s);
  const started = performance.now();
  const firstStep = state.step;
  const ops = FLOAT32_OPS(opts.kernels);
  await runWithCheckpoints(state, data, s, {
    ops,
    checkpoint: ckpt,
    fingerprint,
    every: opts.checkpointEvery,
    signal: opts.signal,
    onStep: opts.onStep,
    onCheckpoint: opts.onCheckpoint,
  });
  const seconds = (performance.now() - started) / 1000;
  const result: TrainSaeResult = {
    complete: state.step >= steps,
    steps: state.step,
    trainTokens: state.step * s.batchSize,
    harvestRows: rows,
    heldOutRows: heldOutX.rows,
    passes: Math.ceil((state.step * s.batchSize) / rows),
    heldOut: null,
    tokensPerSecond: ((state.step - firstStep) * s.batchSize) / Math.max(seconds, 1e-9),
    stepEngine: stepEngine(ops, s),
    checkpoint: ckpt,
    out: opts.out,
  };
  if (!result.complete) return result;

  const contents = trainedSaeContents(state, s, dims, {
    hook: opts.hook,
    modelName: opts.modelName,
    context: opts.context,
  });
  const sae = new Sae({
    cfg: contents.cfg,
    weights: { ...contents.weights, W_enc: contents.weights.W_enc.slice() },
    kernels: opts.kernels,
  });
  let heldOutMetrics: HeldOutMetrics;
  try {
    heldOutMetrics = evaluateSae(sae, heldOutX);
  } finally {
    sae.dispose();
  }
  const { logDensity, ...metrics } = heldOutMetrics;
  result.heldOut = metrics;
  contents.logSparsity = logDensity;
  await writeSaeLensDir(opts.out, contents, {
    overwrite: opts.overwrite,
    flag: "--out",
    command: opts.command ?? "sae train",
  });
  const summary = {
    ...result,
    heldOut: metrics,
    settings: s,
    hook: opts.hook,
    model: opts.modelName,
    corpus: opts.corpusName,
    command: opts.command,
  };
  writeFileAtomic(
    join(opts.out, "training_log.jsonl"),
    `${state.log.map((l) => JSON.stringify(l)).join("\n")}\n`,
  );
  writeFileAtomic(join(opts.out, "training.json"), `${JSON.stringify(summary, null, 2)}\n`);
  writeTrainingPage(join(opts.out, "training.html"), {
    log: state.log,
    heldOut: heldOutMetrics,
    hook: opts.hook,
    model: opts.modelName,
    batchSize: s.batchSize,
    harvestNote: passesNote(result),
    command: opts.command,
  });
  removeCheckpoint(ckpt);
  return result;
}

/** Said in the log and on the page when the token budget cycled over the harvest. */
export function passesNote(r: Pick<TrainSaeResult, "passes" | "harvestRows" | "trainTokens">): string {
  return r.passes > 1
    ? `The corpus gave ${r.harvestRows} training activations; ${r.trainTokens} were trained on, so training cycled over them ${r.passes} times, reshuffled each pass.`
    : `Trained on ${r.trainTokens} of ${r.harvestRows} harvested activations (one pass).`;
}
