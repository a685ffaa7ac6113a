/** Float64 arithmetic for the SAE step's definition (`batchLossAndGrads`) and the error measure its tests use. */
import type { ArrayOps } from "../../src/sae-train/sae-loss.ts";

/** Plain float64 arrays and a textbook triple-loop product: the step's definition run without rounding to float32. */
export const F64: ArrayOps<Float64Array> = {
  zeros: (n) => new Float64Array(n),
  matmul(a, b, m, k, n) {
    const out = new Float64Array(m * n);
    for (let i = 0; i < m; i++)
      for (let p = 0; p < k; p++) for (let j = 0; j < n; j++) out[i * n + j] += a[i * k + p] * b[p * n + j];
    return out;
  },
};

/** Largest |a − b| over the tensor, relative to the largest |b| (at least `floor`). */
export function relErr(a: ArrayLike<number>, b: ArrayLike<number>, floor: number): number {
  let diff = 0;
  let scale = floor;
  for (let i = 0; i < b.length; i++) {
    diff = Math.max(diff, Math.abs(a[i] - b[i]));
    scale = Math.max(scale, Math.abs(b[i]));
  }
  return diff / scale;
}
