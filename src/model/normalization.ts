/**
 * LayerNorm and RMSNorm as TransformerLens has them, in one place: the forward split at `hook_scale`,
 * applying a (cached) scale to a stack of residual pieces, and the backward.
 *
 *   LayerNorm: x_c = x - mean(x), scale = sqrt(mean(x_c^2) + eps), y = x_c / scale * w + b
 *   RMSNorm:   x_c = x,           scale = sqrt(mean(x^2) + eps),   y = x / scale * w
 * Once folded (LNPre / RMSNormPre) there is no w, b. Gemma's RMSNorm multiplies by (1 + weight): its
 * converter stores that effective gain as w (as TransformerLens does), so it is this RMSNorm.
 */
import type { LayerNormParams } from "../weights/canonical-weights.ts";

export type NormKind = "layernorm" | "rmsnorm";

/**
 * Centre (LayerNorm) each row of x [rows, D] and compute its scale [rows]. Split from the division so a
 * hook on `hook_scale` can replace the scale before it is used.
 */
export function normScale(
  kind: NormKind,
  x: Float32Array,
  rows: number,
  D: number,
  eps: number,
): { centered: Float32Array; scale: Float32Array } {
  const centered = new Float32Array(rows * D);
  const scale = new Float32Array(rows);
  const centre = kind === "layernorm";
  for (let r = 0; r < rows; r++) {
    const o = r * D;
    let mean = 0;
    if (centre) {
      for (let d = 0; d < D; d++) mean += x[o + d];
      mean /= D;
    }
    let sq = 0;
    for (let d = 0; d < D; d++) {
      const c = x[o + d] - mean;
      centered[o + d] = c;
      sq += c * c;
    }
    scale[r] = Math.sqrt(sq / D + eps);
  }
  return { centered, scale };
}

/** Divides each row of `centered` [rows, D] by its scale, in place. */
export function divideRows(centered: Float32Array, scale: Float32Array, D: number): Float32Array {
  for (let r = 0; r < scale.length; r++) {
    const inv = 1 / scale[r];
    for (let d = 0; d < D; d++) centered[r * D + d] *= inv;
  }
  return centered;
}

/** y * w + b per row, in place; y itself when the norm was folded. */
export function applyNormAffine(y: Float32Array, ln: LayerNormParams | null, D: number): Float32Array {
  if (!ln) return y;
  const w = ln.w.data;
  const b = ln.b.data;
  for (let o = 0; o < y.length; o += D) for (let d = 0; d < D; d++) y[o + d] = y[o + d] * w[d] + b[d];
  return y;
}

/**
 * The norm's forward: y = x_c / scale (· w + b) for rows of x [rows, D]. `fireScale` sees (and may replace)
 * the scale [rows] before it is used (the `hook_scale` point); the scale returned is the one used.
 */
export function normalize(a: {
  kind: NormKind;
  x: Float32Array;
  rows: number;
  D: number;
  eps: number;
  ln: LayerNormParams | null;
  fireScale?: (scale: Float32Array) => Float32Array;
}): { y: Float32Array; scale: Float32Array } {
  const { centered, scale: computed } = normScale(a.kind, a.x, a.rows, a.D, a.eps);
  const scale = a.fireScale ? a.fireScale(computed) : computed;
  return { y: applyNormAffine(divideRows(centered, scale, a.D), a.ln, a.D), scale };
}

/** A norm without affine weights (LNPre by default): normalised rows y and the per-row scale. */
export function normalizeRows(
  x: Float32Array,
  rows: number,
  D: number,
  eps: number,
  kind: NormKind = "layernorm",
): { y: Float32Array; scale: Float32Array } {
  const { centered, scale } = normScale(kind, x, rows, D, eps);
  return { y: divideRows(centered, scale, D), scale };
}

/**
 * Normalises every piece of a residual stack [n, rows, D] as the norm would its sum: each piece centred
 * (LayerNorm) and divided by `scales[r]` (the cached scale of the sum, TransformerLens'
 * `apply_ln_to_stack`), or by its own scale when `scales` is null.
 */
export function normalizeStack(a: {
  kind: NormKind;
  stack: Float32Array; // [n, rows, D]
  n: number;
  rows: number;
  D: number;
  scales: Float32Array | null; // [rows]
  eps: number;
}): Float32Array {
  const { kind, stack, n, rows, D, scales, eps } = a;
  const out = new Float32Array(stack.length);
  const centre = kind === "layernorm";
  for (let i = 0; i < n; i++)
    for (let r = 0; r < rows; r++) {
      const o = (i * rows + r) * D;
      let mean = 0;
      if (centre) {
        for (let d = 0; d < D; d++) mean += stack[o + d];
        mean /= D;
      }
      let sq = 0;
      for (let d = 0; d < D; d++) sq += (stack[o + d] - mean) ** 2;
      const s = scales ? scales[r] : Math.sqrt(sq / D + eps);
      for (let d = 0; d < D; d++) out[o + d] = (stack[o + d] - mean) / s;
    }
  return out;
}

/**
 * Backward of the norm over rows of x [rows, D]. Given d/d normalized, returns d/d scale (hook_scale's own
 * gradient) and the total gradient into x, through the centring (LayerNorm) and the scale. With
 * `frozenScale` the scale is a constant (a linearised pass, as attribution graphs take it): the gradient
 * into x goes through the centring and the division only.
 */
export function normBackward(a: {
  kind: NormKind;
  x: Float32Array; // [rows, D], the norm's input as cached
  scale: Float32Array; // [rows]
  ln: LayerNormParams | null;
  gNormalized: Float32Array; // [rows, D]
  rows: number;
  D: number;
  frozenScale?: boolean;
}): { gInput: Float32Array; gScale: Float32Array } {
  const { kind, x, scale, ln, gNormalized, rows, D } = a;
  const through = a.frozenScale ? 0 : 1; // whether the scale's own gradient flows on into x
  const gInput = new Float32Array(rows * D);
  const gScale = new Float32Array(rows);
  const w = ln?.w.data ?? null;
  const centre = kind === "layernorm";
  const y = new Float64Array(D); // x_c / scale
  const gy = new Float64Array(D); // d/d y
  for (let r = 0; r < rows; r++) {
    const o = r * D;
    let nonzero = false;
    for (let d = 0; d < D; d++) if (gNormalized[o + d] !== 0) nonzero = true;
    if (!nonzero) continue; // rows no gradient reaches (e.g. positions after the metric's)
    let mean = 0;
    if (centre) {
      for (let d = 0; d < D; d++) mean += x[o + d];
      mean /= D;
    }
    const s = scale[r];
    let dotGyY = 0;
    for (let d = 0; d < D; d++) {
      y[d] = (x[o + d] - mean) / s;
      gy[d] = w ? gNormalized[o + d] * w[d] : gNormalized[o + d];
      dotGyY += gy[d] * y[d];
    }
    // y = x_c / s  ⇒  d/ds = -Σ gy·y / s
    const gS = -dotGyY / s;
    gScale[r] = gS;
    // d/dx_c = gy / s + d/ds · ds/dx_c, with ds/dx_c = x_c / (D s) = y / D
    let meanGxc = 0;
    for (let d = 0; d < D; d++) {
      gy[d] = gy[d] / s + (through * gS * y[d]) / D;
      meanGxc += gy[d];
    }
    meanGxc = centre ? meanGxc / D : 0;
    // x_c = x - mean(x)  ⇒  subtract the mean of the gradient
    for (let d = 0; d < D; d++) gInput[o + d] = gy[d] - meanGxc;
  }
  return { gInput, gScale };
}
