/** Element-wise pieces of the forward pass, kept apart so the backward pass can mirror them. */

export const SQRT_2_OVER_PI = Math.sqrt(2 / Math.PI);

export type Activation = "gelu_new" | "gelu" | "relu";

export function applyActivation(act: Activation, pre: Float32Array): Float32Array {
  const out = new Float32Array(pre.length);
  if (act === "gelu_new") {
    for (let i = 0; i < pre.length; i++) {
      const x = pre[i];
      out[i] = 0.5 * x * (1 + fastTanh(SQRT_2_OVER_PI * (x + 0.044715 * x * x * x)));
    }
  } else if (act === "gelu") {
    for (let i = 0; i < pre.length; i++) {
      const x = pre[i];
      out[i] = 0.5 * x * (1 + erf(x / Math.SQRT2));
    }
  } else {
    for (let i = 0; i < pre.length; i++) out[i] = Math.max(pre[i], 0);
  }
  return out;
}

/**
 * tanh through one exp: V8's Math.tanh costs ~4x more, and GELU runs on every MLP neuron. Absolute error
 * is ~1e-16 (float64), far below float32 resolution; |u| > 20 saturates exactly.
 */
export function fastTanh(u: number): number {
  if (u > 20) return 1;
  if (u < -20) return -1;
  const e = Math.exp(2 * u);
  return (e - 1) / (e + 1);
}

/** d act / d pre, element-wise. */
export function activationDerivative(act: Activation, x: number): number {
  if (act === "gelu_new") {
    const u = SQRT_2_OVER_PI * (x + 0.044715 * x * x * x);
    const t = Math.tanh(u);
    const du = SQRT_2_OVER_PI * (1 + 3 * 0.044715 * x * x);
    return 0.5 * (1 + t) + 0.5 * x * (1 - t * t) * du;
  }
  if (act === "gelu")
    return 0.5 * (1 + erf(x / Math.SQRT2)) + (x * Math.exp(-0.5 * x * x)) / Math.sqrt(2 * Math.PI);
  return x > 0 ? 1 : 0;
}

/** erf via the Chebyshev-fitted erfc of Numerical Recipes (fractional error < 1.2e-7, below float32 resolution). */
export function erf(x: number): number {
  const z = Math.abs(x);
  const t = 1 / (1 + 0.5 * z);
  const r =
    t *
    Math.exp(
      -z * z -
        1.26551223 +
        t *
          (1.00002368 +
            t *
              (0.37409196 +
                t *
                  (0.09678418 +
                    t *
                      (-0.18628806 +
                        t *
                          (0.27886807 +
                            t * (-1.13520398 + t * (1.48851587 + t * (-0.82215223 + t * 0.17087277)))))))),
    );
  return x >= 0 ? 1 - r : r - 1;
}

/**
 * Centre each row of x [rows, D] and compute its LayerNorm scale sqrt(mean(x_c^2) + eps) [rows].
 * Split from the division so a hook on `hook_scale` can replace the scale before it is used.
 */
export function centerAndScale(
  x: Float32Array,
  rows: number,
  D: number,
  eps: number,
): { centered: Float32Array; scale: Float32Array } {
  const centered = new Float32Array(rows * D);
  const scale = new Float32Array(rows);
  for (let r = 0; r < rows; r++) {
    const o = r * D;
    let mean = 0;
    for (let d = 0; d < D; d++) mean += x[o + d];
    mean /= D;
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

/** LayerNorm without affine weights: normalised rows y and the per-row scale. */
export function normalizeRows(
  x: Float32Array,
  rows: number,
  D: number,
  eps: number,
): { y: Float32Array; scale: Float32Array } {
  const { centered, scale } = centerAndScale(x, rows, D, eps);
  return { y: divideRows(centered, scale, D), scale };
}
