/**
 * The logit readout through the unembedding, in one place: logit[t] = y · W_U[:, t] + b_U[t] for ln_final's
 * output y, read for a few vocabulary entries (a direction in d_model) or for all of them (the kernel op).
 * Its backward is the same direction: d logit[t] / d y = W_U[:, t]. A logit difference reads the
 * difference of two columns. Every pass (forward metrics, backward seeds, edge-masked runs, attribution)
 * reads W_U through here.
 *
 * Final-logit soft-capping (Gemma 2): logit = cap · tanh(raw / cap) of the raw readout above. A single
 * logit's readout carries the cap (`logitReadout`), and its backward multiplies by 1 − tanh²
 * (`readoutSlope`); a logit difference read as one direction is the difference of *raw* logits (linear in
 * y): exact for uncapped models, the pre-cap difference for capped ones (docs/models.md).
 */
import type { Tensor } from "../tensor/tensor.ts";
import { softCap, softCapSlope } from "./attention.ts";
import type { HookedTransformer } from "./hooked-transformer.ts";

/** What the readout reads: the unembedding [d_model, d_vocab] and its bias [d_vocab]. */
export interface Unembedding {
  W_U: Tensor;
  b_U: Tensor;
}

/** One readout as a direction in d_model: logit = y · dir + bias. Float64: W_U's float32 values exactly. */
export interface ReadoutDirection {
  /** [d_model] */
  dir: Float64Array;
  bias: number;
  /** Final-logit soft-cap applied to y · dir + bias (a single logit of a capped model), or absent/null. */
  softCap?: number | null;
}

/** What a readout value reads: a direction, its bias and any soft-cap. */
type Readout = { dir: ArrayLike<number>; bias: number; softCap?: number | null };

/** Logit[`token`] of `model` as a readout, with the model's final-logit soft-cap if it has one. */
export function logitReadout(model: HookedTransformer, token: number): ReadoutDirection {
  return { ...readoutDirection(model.weights, token), softCap: model.cfg.finalSoftCap ?? null };
}

/**
 * The direction of logit[`token`], or of logit[`token`] − logit[`minus`] (a logit difference), in d_model.
 * The difference is taken in float64, so it rounds once wherever it is stored.
 */
export function readoutDirection(
  u: Unembedding,
  token: number,
  minus: number | null = null,
): ReadoutDirection {
  const [D, V] = u.W_U.shape;
  checkToken(token, V);
  if (minus !== null) checkToken(minus, V);
  const WU = u.W_U.data; // read once: W_U may be a view onto the kernels' copy
  const bU = u.b_U.data;
  const dir = new Float64Array(D);
  if (minus === null) for (let d = 0; d < D; d++) dir[d] = WU[d * V + token];
  else for (let d = 0; d < D; d++) dir[d] = WU[d * V + token] - WU[d * V + minus];
  return { dir, bias: minus === null ? bU[token] : bU[token] - bU[minus] };
}

function checkToken(token: number, V: number): void {
  if (!Number.isInteger(token) || token < 0 || token >= V)
    throw new Error(`Token ${token} is outside the vocabulary [0, ${V})`);
}

/**
 * Forward: y[offset .. offset + d_model) · dir + bias, in float64 (dir as stored: float64 or float32),
 * soft-capped when the readout carries a cap.
 */
export function readoutValue(r: Readout, y: ArrayLike<number>, offset = 0): number {
  let s = r.bias;
  const D = r.dir.length;
  for (let d = 0; d < D; d++) s += y[offset + d] * r.dir[d];
  return r.softCap == null ? s : softCap(s, r.softCap);
}

/** d readoutValue / d (y · dir): 1 without a cap, else 1 − tanh² at this y (scale addReadoutGradient's weight by it). */
export function readoutSlope(r: Readout, y: ArrayLike<number>, offset = 0): number {
  return r.softCap == null ? 1 : softCapSlope(readoutValue(r, y, offset), r.softCap);
}

/** Final-logit soft-capping of every logit, in place (nothing without a cap). */
export function softCapLogits(logits: Float32Array, cap: number | null): Float32Array {
  if (cap !== null) for (let i = 0; i < logits.length; i++) logits[i] = softCap(logits[i], cap);
  return logits;
}

/** d/d raw logits from d/d capped logits `g` and the capped logits, in a new array (g itself without a cap). */
export function softCapLogitsBackward(
  capped: Float32Array,
  g: Float32Array,
  cap: number | null,
): Float32Array {
  if (cap === null) return g;
  return Float32Array.from(g, (gi, i) => (gi === 0 ? 0 : gi * softCapSlope(capped[i], cap)));
}

/** Backward: d (weight · readout) / d y added into g[offset .. offset + d_model). */
export function addReadoutGradient(
  r: { dir: ArrayLike<number> },
  weight: number,
  g: Float32Array,
  offset = 0,
): void {
  const D = r.dir.length;
  for (let d = 0; d < D; d++) g[offset + d] += weight * r.dir[d];
}

/**
 * Every logit: [rows, d_vocab] of ln_final outputs [rows, d_model], through the model's unembedding op,
 * soft-capped when the model caps its final logits.
 */
export function unembedRows(model: HookedTransformer, normalized: Float32Array, rows: number): Float32Array {
  const raw = model.forwardEngine.unembedOp().forward(normalized, rows);
  return softCapLogits(raw, model.cfg.finalSoftCap ?? null);
}
