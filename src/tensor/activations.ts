/** The MLP non-linearities, element-wise, and their derivatives (for the backward pass). */

export const SQRT_2_OVER_PI = Math.sqrt(2 / Math.PI);

export type Activation = "gelu_new" | "gelu" | "relu" | "silu";

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
  } else if (act === "silu") {
    for (let i = 0; i < pre.length; i++) out[i] = pre[i] / (1 + Math.exp(-pre[i]));
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
  if (act === "silu") {
    const s = 1 / (1 + Math.exp(-x));
    return s * (1 + x * (1 - s));
  }
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
