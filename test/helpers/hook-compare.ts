/** Comparing an engine's padded-batch hook values with a float64 reference's single-prompt ones. */
import assert from "node:assert/strict";
import type { Tensor } from "../../src/tensor/tensor.ts";

/** Prompt b's part of a padded batch activation: [1, n, ...] (or [1, H, n, n] for scores and patterns). */
export function promptSlice(name: string, t: Tensor, b: number, n: number): Float32Array {
  const [B, ...rest] = t.shape;
  const per = t.data.length / B;
  const x = t.data.subarray(b * per, (b + 1) * per);
  if (/hook_(attn_scores|pattern)$/.test(name)) {
    const [H, P] = rest;
    const out = new Float32Array(H * n * n);
    for (let h = 0; h < H; h++)
      for (let i = 0; i < n; i++) out.set(x.subarray((h * P + i) * P, (h * P + i) * P + n), (h * n + i) * n);
    return out;
  }
  const P = rest[0];
  return x.subarray(0, (per / P) * n);
}

/** Largest |a - b| / max(1, |b|) (equal infinities equal). */
export function relDiff(a: Float32Array, b: Float64Array): number {
  assert.equal(a.length, b.length);
  let worst = 0;
  for (let i = 0; i < a.length; i++) {
    if (a[i] === b[i]) continue;
    const d = Math.abs(a[i] - b[i]) / Math.max(1, Math.abs(b[i]));
    worst = Number.isNaN(d) ? Number.POSITIVE_INFINITY : Math.max(worst, d);
  }
  return worst;
}
