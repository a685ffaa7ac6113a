/**
 * Per-layer transcoders (Dunefsky et al. 2024; circuit-tracer's single-layer transcoders) from the SAE trainer:
 * features read one hook (`feature_input_hook`, e.g. ln2.hook_normalized) and predict another
 * (`feature_output_hook`, e.g. hook_mlp_out) of the same block, loss ‖ŷ − y‖² with y the output hook's
 * activation. Every layer's input and output activations are harvested in one pass of the model; the layers
 * then train one after the other through the SAE's own loop (checkpoint per layer beside `out`, so Ctrl-C
 * keeps them and `resume` continues bit for bit), are evaluated on held-out text and written as one
 * circuit-tracer transcoder set (src/graphs' writer) with each layer's training log, page and metrics.
 *
 * The input is encoded as it is (circuit-tracer: pre = W_enc · input + b_enc, no b_dec subtracted), so
 * `applyBDecToInput` is off. circuit-tracer's transcoders are ReLU or JumpReLU: topk has no such form, so a
 * k-sparse transcoder is trained as batchtopk and saved as JumpReLU with its learnt threshold.
 */
import { existsSync } from "node:fs";
import { join } from "node:path";
import { reconstructMlpOut } from "../graphs/replacement-run.ts";
import {
  encodeTranscoder,
  type Transcoder,
  type TranscoderSet,
  writeTranscoderSet,
} from "../graphs/transcoder-set.ts";
import { writeFileAtomic } from "../util/atomic-write.ts";
import { checkpointPath, isOurCheckpoint, loadCheckpoint, removeCheckpoint } from "./checkpoint.ts";
import { type ActivationBuffer, harvestActivations } from "./harvest.ts";
import { evaluateCodec, type HeldOutCodec, type HeldOutMetrics } from "./held-out.ts";
import {
  passesNote,
  runFingerprint,
  runWithCheckpoints,
  splitSequences,
  type TrainSaeOptions,
} from "./train-sae.ts";
import {
  FLOAT32_OPS,
  initTrainState,
  type StepEngine,
  type StepLog,
  stepEngine,
  type TrainSettings,
  type TrainState,
  totalSteps,
} from "./trainer.ts";
import { writeTrainingPage } from "./training-page.ts";

/** As `sae train`'s options, with the layers and the two block-relative hooks in place of one hook. */
export interface TrainTranscodersOptions extends Omit<TrainSaeOptions, "hook" | "onStep" | "onCheckpoint"> {
  /** Block indices to train, ascending. */
  layers: number[];
  /** Block-relative hook names, as circuit-tracer's config names them. */
  featureInputHook: string;
  featureOutputHook: string;
  onStep?: (layer: number, log: StepLog) => void;
  onCheckpoint?: (layer: number, step: number, path: string) => void;
}

export interface LayerResult {
  layer: number;
  steps: number;
  /** Held-out metrics of the layer's prediction of its output hook. */
  heldOut: Omit<HeldOutMetrics, "logDensity"> | null;
  tokensPerSecond: number;
}

export interface TrainTranscodersResult {
  complete: boolean;
  /** The step's implementation (`stepEngine`): the graph and the loops round differently. */
  stepEngine: StepEngine;
  layers: LayerResult[];
  trainTokensPerLayer: number;
  harvestRows: number;
  heldOutRows: number;
  passes: number;
  checkpoints: string[];
  out: string;
}

/** Architectures a circuit-tracer transcoder file can hold (ReLU or JumpReLU). */
export const TRANSCODER_ARCHITECTURES = ["batchtopk", "jumprelu", "standard"] as const;

/** The full hook name of a block-relative one at `layer`. */
export function blockHook(layer: number, relative: string): string {
  return `blocks.${layer}.${relative}`;
}

/** Where layer `layer`'s checkpoint lives while the set at `out` trains. */
export function layerCheckpointPath(out: string, layer: number): string {
  return checkpointPath(`${out.replace(/[/\\]+$/, "")}.layer_${layer}`);
}

/** Refuses, before any work, checkpoints that `resume` cannot use or that a fresh run would clobber. */
export function transcoderCheckpointProblem(out: string, layers: number[], resume: boolean): string | null {
  const paths = layers.map((l) => layerCheckpointPath(out, l));
  const foreign = paths.find((p) => existsSync(p) && !isOurCheckpoint(p));
  if (foreign)
    return `${foreign} exists and is not a circuitscope checkpoint: move it away (training keeps its checkpoint there).`;
  const present = paths.filter((p) => existsSync(p));
  if (resume && present.length === 0)
    return `--resume: there is no checkpoint ${paths[0]} (one per layer) to continue; drop --resume to start afresh.`;
  if (!resume && present.length > 0)
    return `An interrupted run left its checkpoint ${present[0]}: add --resume to continue it, or delete the layer checkpoints to start afresh.`;
  return null;
}

/**
 * A trained state in circuit-tracer's layout: W_enc transposed to [d_tc, d_model]; batchtopk's running
 * threshold or jumprelu's learnt one as activation_function.threshold; standard is a plain ReLU.
 */
export function trainedTranscoder(
  state: TrainState,
  s: TrainSettings,
  layer: number,
  dModel: number,
): Transcoder {
  const p = state.params;
  const dTc = s.dSae;
  const wEnc = new Float32Array(dTc * dModel);
  for (let i = 0; i < dModel; i++) for (let f = 0; f < dTc; f++) wEnc[f * dModel + i] = p.W_enc[i * dTc + f];
  let threshold: Float32Array | null = null;
  if (s.architecture === "jumprelu") threshold = p.log_threshold!.map(Math.exp);
  else if (s.architecture === "batchtopk") {
    if (!Number.isFinite(state.thresholdEma))
      throw new Error(`Layer ${layer}: BatchTopK kept no activation during training, so it has no threshold`);
    threshold = new Float32Array(dTc).fill(state.thresholdEma);
  } else if (s.architecture !== "standard")
    throw new Error(
      `A circuit-tracer transcoder is ReLU or JumpReLU; ${s.architecture} has no such form: train batchtopk (saved as JumpReLU), jumprelu or standard`,
    );
  return {
    layer,
    dModel,
    dTranscoder: dTc,
    wEnc,
    wDec: p.W_dec.slice(),
    bEnc: p.b_enc.slice(),
    bDec: p.b_dec.slice(),
    threshold,
    wSkip: null,
  };
}

/** A transcoder as a held-out codec, through the very encode and reconstruction the attribution graphs run. */
export function transcoderCodec(tc: Transcoder): HeldOutCodec {
  const D = tc.dModel;
  return {
    dSae: tc.dTranscoder,
    encode: (x, rows) => {
      const post = new Float32Array(rows * tc.dTranscoder);
      for (let r = 0; r < rows; r++)
        post.set(encodeTranscoder(tc, x.subarray(r * D, (r + 1) * D)), r * tc.dTranscoder);
      return { post };
    },
    decode: (post, rows, x) => {
      const out = new Float32Array(rows * D);
      for (let r = 0; r < rows; r++) {
        const codes = post.subarray(r * tc.dTranscoder, (r + 1) * tc.dTranscoder);
        out.set(reconstructMlpOut(tc, codes, x.subarray(r * D, (r + 1) * D)), r * D);
      }
      return out;
    },
  };
}

/** Files the set directory holds beside circuit-tracer's: per layer its log and page, and the run's metrics. */
export const TRANSCODER_TRAINING_FILE = "training.json";
export const layerLogFile = (layer: number) => `layer_${layer}.training_log.jsonl`;
export const layerPageFile = (layer: number) => `layer_${layer}.training.html`;

export async function trainTranscoders(opts: TrainTranscodersOptions): Promise<TrainTranscodersResult> {
  const { model, settings: s, layers } = opts;
  if (s.applyBDecToInput)
    throw new Error(
      "A transcoder encodes its input as it is (circuit-tracer): set applyBDecToInput to false",
    );
  if (!(TRANSCODER_ARCHITECTURES as readonly string[]).includes(s.architecture))
    throw new Error(
      `A circuit-tracer transcoder is ReLU or JumpReLU, so --architecture ${s.architecture} cannot be saved as one: use ${TRANSCODER_ARCHITECTURES.join(", ")} (batchtopk is k-sparse and saved as JumpReLU)`,
    );
  const problem = transcoderCheckpointProblem(opts.out, layers, opts.resume ?? false);
  if (problem) throw new Error(problem);
  const { train, heldOut } = splitSequences(model, opts.corpus, opts.context);
  // One pass of the model harvests every layer's input and output.
  const hooks = layers.flatMap((l) => [
    blockHook(l, opts.featureInputHook),
    blockHook(l, opts.featureOutputHook),
  ]);
  const harvest = (seqs: number[][], maxTokens?: number) =>
    harvestActivations(model, seqs, { hooks, maxTokens, signal: opts.signal, onProgress: opts.onHarvest });
  const trainBufs = harvest(train, s.tokens);
  const heldOutBufs = harvest(heldOut);
  const pair = (bufs: ActivationBuffer[], i: number) => ({ x: bufs[2 * i], y: bufs[2 * i + 1] });
  const dModel = trainBufs[0].width;
  if (trainBufs[1].width !== dModel)
    throw new Error(
      `A circuit-tracer transcoder reads and writes d_model: ${opts.featureInputHook} has width ${dModel} but ${opts.featureOutputHook} has ${trainBufs[1].width}`,
    );
  const rows = trainBufs[0].rows;
  const steps = totalSteps(s);
  const ops = FLOAT32_OPS(model.kernels);

  const results: LayerResult[] = [];
  const states: TrainState[] = [];
  for (const [i, layer] of layers.entries()) {
    const data = pair(trainBufs, i);
    const ckpt = layerCheckpointPath(opts.out, layer);
    const fingerprint = runFingerprint(
      {
        modelName: opts.modelName,
        hook: `${blockHook(layer, opts.featureInputHook)} -> ${blockHook(layer, opts.featureOutputHook)}`,
        context: opts.context,
        settings: s,
      },
      opts.corpus.name,
      rows,
    );
    const state = existsSync(ckpt) ? loadCheckpoint(ckpt, fingerprint) : initTrainState(data, s);
    const started = performance.now();
    const firstStep = state.step;
    await runWithCheckpoints(state, data, s, {
      ops,
      checkpoint: ckpt,
      fingerprint,
      every: opts.checkpointEvery,
      signal: opts.signal,
      onStep: (log) => opts.onStep?.(layer, log),
      onCheckpoint: (step, path) => opts.onCheckpoint?.(layer, step, path),
    });
    const seconds = (performance.now() - started) / 1000;
    results.push({
      layer,
      steps: state.step,
      heldOut: null,
      tokensPerSecond: ((state.step - firstStep) * s.batchSize) / Math.max(seconds, 1e-9),
    });
    states.push(state);
    if (state.step < steps) break;
  }
  const checkpoints = layers.map((l) => layerCheckpointPath(opts.out, l));
  const result: TrainTranscodersResult = {
    complete: results.length === layers.length && results.every((r) => r.steps >= steps),
    stepEngine: stepEngine(ops, s),
    layers: results,
    trainTokensPerLayer: steps * s.batchSize,
    harvestRows: rows,
    heldOutRows: heldOutBufs[0].rows,
    passes: Math.ceil((steps * s.batchSize) / rows),
    checkpoints,
    out: opts.out,
  };
  if (!result.complete) return result;

  const transcoders = layers.map((layer, i) => trainedTranscoder(states[i], s, layer, dModel));
  const metrics = transcoders.map((tc, i) => {
    const { x, y } = pair(heldOutBufs, i);
    return evaluateCodec(transcoderCodec(tc), x, y);
  });
  metrics.forEach((m, i) => {
    const { logDensity: _, ...rest } = m;
    results[i].heldOut = rest;
  });
  const set: TranscoderSet = {
    featureInputHook: opts.featureInputHook,
    featureOutputHook: opts.featureOutputHook,
    modelName: opts.modelName,
    ids: layers.map((l) => `layer_${l}`),
    transcoders,
  };
  const note = passesNote({ passes: result.passes, harvestRows: rows, trainTokens: steps * s.batchSize });
  const summary = {
    ...result,
    settings: s,
    feature_input_hook: opts.featureInputHook,
    feature_output_hook: opts.featureOutputHook,
    model: opts.modelName,
    corpus: opts.corpus.name,
    note,
    command: opts.command,
  };
  await writeTranscoderSet(opts.out, set, {
    overwrite: opts.overwrite,
    flag: "--out",
    command: opts.command ?? "sae train (transcoders)",
    extra: (dir) => {
      layers.forEach((layer, i) => {
        const log = states[i].log;
        writeFileAtomic(join(dir, layerLogFile(layer)), `${log.map((l) => JSON.stringify(l)).join("\n")}\n`);
        writeTrainingPage(join(dir, layerPageFile(layer)), {
          log,
          heldOut: metrics[i],
          hook: `${blockHook(layer, opts.featureInputHook)} → ${blockHook(layer, opts.featureOutputHook)}`,
          model: opts.modelName,
          batchSize: s.batchSize,
          harvestNote: note,
          command: opts.command,
        });
      });
      writeFileAtomic(join(dir, TRANSCODER_TRAINING_FILE), `${JSON.stringify(summary, null, 2)}\n`);
    },
  });
  for (const c of checkpoints) removeCheckpoint(c);
  return result;
}
