/**
 * The training loop over harvested activations, as SAELens / OpenAI train SAEs: decoder rows initialised
 * small with W_enc = W_decᵀ, b_dec at the data mean, Adam with warm-up and a linear decay to zero, global
 * gradient-norm clipping, unit-norm decoder rows for topk / batchtopk / jumprelu (the gradient's component
 * along each row removed before the step, rows renormalised after it), dead-latent tracking for AuxK.
 * Deterministic for a seed: batch b of the run is a fixed slice of a seeded shuffle of the harvest (one
 * fresh shuffle per pass over it), so the state after step s depends only on (data, settings, s), and a
 * run resumed from a checkpoint equals one never stopped, bit for bit.
 */
import type { Kernels } from "../tensor/kernels.ts";
import { mulberry32, randn } from "../util/random.ts";
import { type ActivationSource, inMemorySource } from "./activation-source.ts";
import { graphBatchStep, isGraphArchitecture } from "./graph-step.ts";

export { BatchOrder, rowMean } from "./activation-source.ts";

import type { ActivationBuffer } from "./harvest.ts";
import {
  type ArrayOps,
  batchLossAndGrads,
  decoderRowNorms,
  type LossSettings,
  PARAM_NAMES,
  type ParamName,
  type SaeDims,
  type SaeParams,
} from "./sae-loss.ts";

export interface TrainSettings extends LossSettings {
  dSae: number;
  batchSize: number;
  /** Activations to train on (whole batches: rounded up). */
  tokens: number;
  lr: number;
  /** Linear warm-up steps, then constant, then a linear decay to 0 over `decaySteps`. */
  warmupSteps: number;
  decaySteps: number;
  maxGradNorm: number;
  seed: number;
  /** A latent that has not fired for this many steps counts as dead (AuxK, the log's dead share). */
  deadWindow: number;
  decoderInitNorm: number;
  /** jumprelu: initial threshold. */
  initThreshold: number;
}

/** Defaults as SAELens / OpenAI use them, scaled to small runs. */
export function defaultTrainSettings(
  s: Pick<TrainSettings, "architecture" | "dSae" | "tokens"> & Partial<TrainSettings>,
): TrainSettings {
  const batchSize = s.batchSize ?? 4096;
  const steps = Math.ceil(s.tokens / batchSize);
  return {
    k: 8,
    l1: s.architecture === "jumprelu" ? 0.01 : 1,
    bandwidth: 0.001,
    auxCoefficient: 1 / 32,
    applyBDecToInput: true,
    batchSize,
    lr: 4e-4,
    warmupSteps: Math.min(1000, Math.round(steps * 0.05)),
    decaySteps: Math.round(steps * 0.2),
    maxGradNorm: 1,
    seed: 0,
    deadWindow: 250,
    decoderInitNorm: 0.1,
    initThreshold: 0.001,
    ...s,
  };
}

export function totalSteps(s: Pick<TrainSettings, "tokens" | "batchSize">): number {
  return Math.ceil(s.tokens / s.batchSize);
}

/** Rows read from (x) and predicted (y); the same buffer for an SAE. */
export interface TrainData {
  x: ActivationBuffer;
  y: ActivationBuffer;
}

/** What the loop trains on: a harvest in memory, or any source of batches (e.g. activation shards on disk). */
export type TrainInput = TrainData | ActivationSource;

function sourceOf(input: TrainInput, seed: number): ActivationSource {
  return "x" in input ? inMemorySource(input, seed) : input;
}

export interface StepLog {
  step: number;
  loss: number;
  mse: number;
  aux: number;
  sparsity: number;
  l0: number;
  /** Share of latents that have not fired for `deadWindow` steps. */
  dead: number;
  lr: number;
}

export interface TrainState {
  /** Steps done. */
  step: number;
  params: SaeParams;
  adamM: SaeParams;
  adamV: SaeParams;
  /** Steps since each latent last fired. */
  sinceFired: Float32Array;
  /** batchtopk: running estimate of the smallest kept activation (saved as the jumprelu threshold). */
  thresholdEma: number;
  log: StepLog[];
}

/**
 * The float32 ops on `kernels`. On a backend that runs whole graphs (onnxruntime), a TopK step is one graph
 * (`graph`, default on: graph-step.ts); the other architectures, and TopK with `graph: false`, take the
 * TypeScript loops. There `denseProducts` (default on): the decode and W_enc's / W_dec's gradients as dense
 * GEMMs (see `ArrayOps`) — on an idle 2-core machine 12 % more tokens/s than the sparse loops (83–87k
 * against 74–75k, docs/benchmarks.md); `false` keeps the sparse loops.
 */
export const FLOAT32_OPS = (
  kernels: Kernels,
  options: { denseProducts?: boolean; graph?: boolean } = {},
): ArrayOps<Float32Array> => ({
  zeros: (n) => new Float32Array(n),
  batchStep: (options.graph ?? true) ? (graphBatchStep(kernels) ?? undefined) : undefined,
  matmul: (a, b, m, k, n) => kernels.bmm(a, b, 1, m, k, n, false),
  denseProducts: options.denseProducts ?? true,
  // The encoder's x' W_enc + b_enc as one GEMM with its bias (a pass over the [B, d_sae] result fewer than
  // bmm then the bias). W_enc changes every step, so the op is built and dropped per call: with onnx that
  // costs less than the bias pass it saves, and MLAS adds C after the whole product, so the result is
  // bmm-then-bias bit for bit (test/sae-train/trainer.test.ts); the reference kernels start the sum from
  // the bias instead.
  affine: (x, W, b, m, k, n) => {
    const op = kernels.linear(W, k, n, b);
    try {
      return op.forward(x, m);
    } finally {
      op.dispose();
    }
  },
});

/** Which implementation of the step `ops` run for these settings, recorded with a trained SAE (their bits differ). */
export type StepEngine = "onnxruntime graph" | "TypeScript loops";

export function stepEngine(ops: ArrayOps<Float32Array>, s: Pick<LossSettings, "architecture">): StepEngine {
  return ops.batchStep && isGraphArchitecture(s.architecture) ? "onnxruntime graph" : "TypeScript loops";
}

/**
 * `ops` whose `zeros` hands out the same arrays step after step: a step's n-th request gets the n-th array,
 * zeroed, when its length matches (a fresh one otherwise). The loss code asks for its buffers in the same
 * order every step, so after the first step a step allocates (almost) nothing and the collector has little
 * to do. `nextStep()` starts handing them out again: the previous step's arrays are not to be used after it.
 */
export function reusingArrays(ops: ArrayOps<Float32Array>): ArrayOps<Float32Array> & { nextStep(): void } {
  const pool: Float32Array[] = [];
  let next = 0;
  return {
    zeros(n) {
      const have = pool[next];
      if (have?.length === n) {
        next++;
        return have.fill(0);
      }
      const fresh = ops.zeros(n);
      pool[next++] = fresh;
      return fresh;
    },
    matmul: (a, b, m, k, n) => ops.matmul(a, b, m, k, n),
    affine: ops.affine && ((x, W, b, m, k, n) => ops.affine!(x, W, b, m, k, n)),
    denseProducts: ops.denseProducts,
    batchStep: ops.batchStep,
    nextStep() {
      next = 0;
    },
  };
}

function paramNames(p: SaeParams): ParamName[] {
  return PARAM_NAMES.filter((n) => p[n] !== undefined);
}

function mapParams(p: SaeParams, f: (a: Float32Array, name: ParamName) => Float32Array): SaeParams {
  const out: Partial<SaeParams> = {};
  for (const n of paramNames(p)) out[n] = f(p[n]!, n);
  return out as SaeParams;
}

export function dimsOf(data: TrainInput, dSae: number): SaeDims {
  return "x" in data
    ? { dIn: data.x.width, dSae, dOut: data.y.width }
    : { dIn: data.dIn, dSae, dOut: data.dOut };
}

/** Unit-norm decoder rows (OpenAI): for every architecture but standard, whose L1 penalty is norm-weighted instead. */
function unitNormDecoder(s: Pick<LossSettings, "architecture">): boolean {
  return s.architecture !== "standard";
}

export function initTrainState(data: TrainInput, s: TrainSettings): TrainState {
  const { dIn, dSae, dOut } = dimsOf(data, s.dSae);
  const source = sourceOf(data, s.seed);
  const rng = mulberry32(s.seed);
  const W_dec = new Float32Array(dSae * dOut);
  for (let j = 0; j < dSae; j++) {
    let norm = 0;
    const row = new Float64Array(dOut);
    for (let i = 0; i < dOut; i++) {
      row[i] = randn(rng);
      norm += row[i] * row[i];
    }
    const scale = s.decoderInitNorm / Math.sqrt(norm);
    for (let i = 0; i < dOut; i++) W_dec[j * dOut + i] = row[i] * scale;
  }
  // W_enc = W_decᵀ when the widths agree (an SAE, or a transcoder between equal widths); else its own draw.
  const W_enc = new Float32Array(dIn * dSae);
  for (let j = 0; j < dSae; j++)
    for (let i = 0; i < dIn; i++)
      W_enc[i * dSae + j] =
        dIn === dOut ? W_dec[j * dOut + i] : (randn(rng) * s.decoderInitNorm) / Math.sqrt(dIn);
  if (unitNormDecoder(s)) renormaliseRows(W_dec, dSae, dOut);
  const params: SaeParams = { W_enc, b_enc: new Float32Array(dSae), W_dec, b_dec: source.targetMean() };
  if (s.architecture === "jumprelu")
    params.log_threshold = new Float32Array(dSae).fill(Math.log(s.initThreshold));
  const zerosLike = (p: SaeParams) => mapParams(p, (a) => new Float32Array(a.length));
  return {
    step: 0,
    params,
    adamM: zerosLike(params),
    adamV: zerosLike(params),
    sinceFired: new Float32Array(dSae),
    thresholdEma: Number.NaN,
    log: [],
  };
}

function renormaliseRows(W: Float32Array, rows: number, width: number): void {
  const norms = decoderRowNorms(W, rows, width);
  for (let j = 0; j < rows; j++)
    if (norms[j] > 0) for (let i = 0; i < width; i++) W[j * width + i] /= norms[j];
}

/** The learning rate of step `step` (0-based). */
export function learningRate(step: number, s: TrainSettings): number {
  const total = totalSteps(s);
  const warm = s.warmupSteps > 0 ? Math.min(1, (step + 1) / s.warmupSteps) : 1;
  const left = total - step;
  const decay = s.decaySteps > 0 && left <= s.decaySteps ? left / s.decaySteps : 1;
  return s.lr * warm * decay;
}

export interface TrainRunOptions {
  ops: ArrayOps<Float32Array>;
  /** Stop after this step (default: the run's last). */
  untilStep?: number;
  signal?: AbortSignal;
  onStep?: (log: StepLog, state: TrainState) => void;
}

/** Runs steps `state.step` … until the run's end (or `untilStep`, or the signal), updating `state` in place. */
export function trainSteps(
  state: TrainState,
  data: TrainInput,
  s: TrainSettings,
  opts: TrainRunOptions,
): void {
  const dims = dimsOf(data, s.dSae);
  const source = sourceOf(data, s.seed);
  const last = Math.min(opts.untilStep ?? totalSteps(s), totalSteps(s));
  const names = paramNames(state.params);
  const beta1 = 0.9;
  const beta2 = 0.999;
  const adamEps = 1e-8;
  const ops = reusingArrays(opts.ops);
  const dead = new Uint8Array(s.dSae);
  while (state.step < last && !opts.signal?.aborted) {
    ops.nextStep();
    const { x, y } = source.batch(state.step, s.batchSize);
    for (let j = 0; j < s.dSae; j++) dead[j] = state.sinceFired[j] >= s.deadWindow ? 1 : 0;
    const batch = { x, y, rows: s.batchSize, dead };
    const res =
      ops.batchStep?.(state.params, batch, dims, s) ?? batchLossAndGrads(state.params, batch, dims, s, ops);
    const g = res.grads;

    if (unitNormDecoder(s)) {
      // Remove each decoder row's gradient along the row: the step then moves it along the unit sphere.
      const { dSae, dOut } = dims;
      const W = state.params.W_dec;
      const gW = g.W_dec;
      for (let j = 0; j < dSae; j++) {
        const o = j * dOut;
        let along = 0;
        let norm2 = 0;
        for (let i = 0; i < dOut; i++) {
          along += gW[o + i] * W[o + i];
          norm2 += W[o + i] ** 2;
        }
        if (norm2 > 0) for (let i = 0; i < dOut; i++) gW[o + i] -= (along / norm2) * W[o + i];
      }
    }
    let gradNorm2 = 0;
    for (const n of names) {
      const gr = g[n]!;
      for (let i = 0; i < gr.length; i++) gradNorm2 += gr[i] * gr[i];
    }
    const clip = Math.sqrt(gradNorm2) > s.maxGradNorm ? s.maxGradNorm / Math.sqrt(gradNorm2) : 1;

    const lr = learningRate(state.step, s);
    const t = state.step + 1;
    const c1 = 1 - beta1 ** t;
    const c2 = 1 - beta2 ** t;
    for (const n of names) {
      const p = state.params[n]!;
      const m = state.adamM[n]!;
      const v = state.adamV[n]!;
      const gr = g[n]!;
      for (let i = 0; i < p.length; i++) {
        const gi = gr[i] * clip;
        m[i] = beta1 * m[i] + (1 - beta1) * gi;
        v[i] = beta2 * v[i] + (1 - beta2) * gi * gi;
        p[i] -= (lr * (m[i] / c1)) / (Math.sqrt(v[i] / c2) + adamEps);
      }
    }
    if (unitNormDecoder(s)) renormaliseRows(state.params.W_dec, dims.dSae, dims.dOut);

    let nDead = 0;
    for (let j = 0; j < s.dSae; j++) {
      state.sinceFired[j] = res.fired[j] ? 0 : state.sinceFired[j] + 1;
      if (state.sinceFired[j] >= s.deadWindow) nDead++;
    }
    if (s.architecture === "batchtopk" && Number.isFinite(res.minKept))
      state.thresholdEma = Number.isNaN(state.thresholdEma)
        ? res.minKept
        : 0.99 * state.thresholdEma + 0.01 * res.minKept;
    const log: StepLog = {
      step: state.step,
      loss: res.loss,
      mse: res.mse,
      aux: res.aux,
      sparsity: res.sparsity,
      l0: res.l0,
      dead: nDead / s.dSae,
      lr,
    };
    state.log.push(log);
    state.step++;
    opts.onStep?.(log, state);
  }
}

/** Every tensor of the state, by name, for a checkpoint; `restoreTensors` is its inverse. */
export function stateTensors(state: TrainState): Record<string, Float32Array> {
  const out: Record<string, Float32Array> = { sinceFired: state.sinceFired };
  for (const n of paramNames(state.params)) {
    out[`params.${n}`] = state.params[n]!;
    out[`adamM.${n}`] = state.adamM[n]!;
    out[`adamV.${n}`] = state.adamV[n]!;
  }
  return out;
}

export function restoreTensors(
  tensors: (name: string) => Float32Array | undefined,
  rest: Pick<TrainState, "step" | "thresholdEma" | "log">,
): TrainState {
  const need = (name: string) => {
    const t = tensors(name);
    if (!t)
      throw new Error(`The checkpoint has no tensor ${name}: it is not a circuitscope training checkpoint`);
    return t;
  };
  const group = (prefix: string): SaeParams => {
    const p: Partial<SaeParams> = {};
    for (const n of PARAM_NAMES) {
      const t = tensors(`${prefix}.${n}`);
      if (t) p[n] = t;
    }
    if (!p.W_enc || !p.b_enc || !p.W_dec || !p.b_dec) need(`${prefix}.W_enc`);
    return p as SaeParams;
  };
  return {
    ...rest,
    params: group("params"),
    adamM: group("adamM"),
    adamV: group("adamV"),
    sinceFired: need("sinceFired"),
  };
}
