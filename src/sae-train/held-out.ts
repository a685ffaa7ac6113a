/**
 * Held-out metrics of a trained SAE (or transcoder) on activations it never trained on, computed with
 * src/sae's own encode/decode (the code every other command runs): L0 = mean non-zero features per token;
 * explained variance = 1 − Σ‖y − ŷ‖² / Σ‖y − ȳ‖² (ȳ: the mean over these tokens); dead fraction = share of
 * features never non-zero on them; log10 feature density as SAELens' sparsity.safetensors holds it.
 */
import type { Sae } from "../sae/sae.ts";
import type { ActivationBuffer } from "./harvest.ts";

export interface HeldOutMetrics {
  tokens: number;
  l0: number;
  explainedVariance: number;
  /** Squared error per token, summed over dimensions. */
  mse: number;
  deadFraction: number;
  /** log10(density + 1e-10) per feature, as SAELens computes its sparsity file. */
  logDensity: Float32Array;
}

/** Rows encoded per call: bounds the [rows, d_sae] codes held at once. */
const CHUNK_ROWS = 4096;

/** What the metrics need of a trained dictionary: its width and, for a chunk of rows, codes then predictions. */
export interface HeldOutCodec {
  dSae: number;
  encode(x: Float32Array, rows: number): { post: Float32Array };
  /** [rows, d_out] from the codes of those rows (`x`: the same rows' input, for a skip term). */
  decode(post: Float32Array, rows: number, x: Float32Array): Float32Array;
}

/** An SAE as a held-out codec: src/sae's own encode/decode. */
export function evaluateSae(sae: Sae, x: ActivationBuffer, y: ActivationBuffer = x): HeldOutMetrics {
  return evaluateCodec(sae, x, y);
}

/** `y` defaults to `x` (an SAE reconstructs its input; a transcoder predicts another hook). */
export function evaluateCodec(
  codec: HeldOutCodec,
  x: ActivationBuffer,
  y: ActivationBuffer = x,
): HeldOutMetrics {
  const { dSae } = codec;
  const dOut = y.width;
  if (x.rows !== y.rows) throw new Error(`Held-out input and output rows differ: ${x.rows} vs ${y.rows}`);
  const mean = new Float64Array(dOut);
  for (let r = 0; r < y.rows; r++) for (let i = 0; i < dOut; i++) mean[i] += y.data[r * dOut + i] / y.rows;
  const fired = new Float64Array(dSae);
  let errSum = 0;
  let varSum = 0;
  let active = 0;
  for (let start = 0; start < x.rows; start += CHUNK_ROWS) {
    const rows = Math.min(CHUNK_ROWS, x.rows - start);
    const xChunk = x.data.subarray(start * x.width, (start + rows) * x.width);
    const { post } = codec.encode(xChunk, rows);
    const yHat = codec.decode(post, rows, xChunk);
    for (let t = 0; t < post.length; t++)
      if (post[t] !== 0) {
        active++;
        fired[t % dSae]++;
      }
    for (let r = 0; r < rows; r++)
      for (let i = 0; i < dOut; i++) {
        const target = y.data[(start + r) * dOut + i];
        errSum += (yHat[r * dOut + i] - target) ** 2;
        varSum += (target - mean[i]) ** 2;
      }
  }
  let dead = 0;
  for (const f of fired) if (f === 0) dead++;
  return {
    tokens: x.rows,
    l0: active / x.rows,
    explainedVariance: 1 - errSum / varSum,
    mse: errSum / x.rows,
    deadFraction: dead / dSae,
    logDensity: Float32Array.from(fired, (f) => Math.log10(f / x.rows + 1e-10)),
  };
}
