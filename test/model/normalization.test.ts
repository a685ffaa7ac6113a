/** The one normalisation module: LayerNorm and RMSNorm forward, stack normalisation and backward. */
import assert from "node:assert/strict";
import { test } from "node:test";
import {
  applyNormAffine,
  type NormKind,
  normalize,
  normalizeRows,
  normalizeStack,
  normBackward,
} from "../../src/model/normalization.ts";
import { Tensor } from "../../src/tensor/tensor.ts";
import { mulberry32, randn } from "../../src/util/random.ts";

const D = 6;
const rng = mulberry32(5);
const vec = (n: number, f = () => randn(rng)) => Float32Array.from({ length: n }, f);
const ln = {
  w: new Tensor(
    vec(D, () => 1 + 0.3 * randn(rng)),
    [D],
  ),
  b: new Tensor(vec(D), [D]),
};

/** The norm written out in float64 for one row, straight from its definition. */
function norm64(kind: NormKind, x: Float64Array, eps: number): Float64Array {
  const mean = kind === "layernorm" ? x.reduce((a, v) => a + v, 0) / x.length : 0;
  const c = x.map((v) => v - mean);
  const s = Math.sqrt(c.reduce((a, v) => a + v * v, 0) / x.length + eps);
  return c.map((v, d) => (v / s) * ln.w.data[d] + ln.b.data[d]);
}

for (const kind of ["layernorm", "rmsnorm"] as const) {
  test(`${kind}: forward matches its definition; RMSNorm does not centre`, () => {
    const x = vec(2 * D);
    const { y, scale } = normalizeRows(x, 2, D, 1e-5, kind);
    applyNormAffine(y, ln, D);
    for (let r = 0; r < 2; r++) {
      const want = norm64(kind, Float64Array.from(x.subarray(r * D, (r + 1) * D)), 1e-5);
      for (let d = 0; d < D; d++) assert.ok(Math.abs(y[r * D + d] - want[d]) < 1e-5);
    }
    const rms = Math.sqrt(x.subarray(0, D).reduce((a, v) => a + v * v, 0) / D + 1e-5);
    assert.equal(Math.abs(scale[0] - rms) < 1e-6, kind === "rmsnorm");
  });

  test(`${kind}: backward matches finite differences of sum(g * norm(x))`, () => {
    const x = vec(D);
    const g = vec(D);
    const loss = (xs: Float64Array) => norm64(kind, xs, 1e-5).reduce((a, v, d) => a + v * g[d], 0);
    const { scale } = normalizeRows(x, 1, D, 1e-5, kind);
    const { gInput, gScale } = normBackward({ kind, x, scale, ln, gNormalized: g, rows: 1, D });
    const h = 1e-6;
    for (let d = 0; d < D; d++) {
      const up = Float64Array.from(x);
      const down = Float64Array.from(x);
      up[d] += h;
      down[d] -= h;
      const fd = (loss(up) - loss(down)) / (2 * h);
      assert.ok(Math.abs(gInput[d] - fd) < 1e-4, `d ${d}: ${gInput[d]} vs ${fd}`);
    }
    // d/d scale with the scale held as a separate input: y = x_c / s.
    const mean = kind === "layernorm" ? x.reduce((a, v) => a + v, 0) / D : 0;
    let want = 0;
    for (let d = 0; d < D; d++) want += (-g[d] * ln.w.data[d] * (x[d] - mean)) / scale[0] ** 2;
    assert.ok(Math.abs(gScale[0] - want) < 1e-4);
  });

  test(`${kind}: pieces normalised with the sum's cached scale add up to the normalised sum`, () => {
    const pieces = vec(3 * D);
    const sum = new Float32Array(D);
    for (let i = 0; i < 3; i++) for (let d = 0; d < D; d++) sum[d] += pieces[i * D + d];
    const { y, scale } = normalizeRows(sum, 1, D, 1e-5, kind);
    const stacked = normalizeStack({ kind, stack: pieces, n: 3, rows: 1, D, scales: scale, eps: 1e-5 });
    for (let d = 0; d < D; d++) {
      const total = stacked[d] + stacked[D + d] + stacked[2 * D + d];
      assert.ok(Math.abs(total - y[d]) < 1e-5);
    }
    // Without a cached scale each piece is normalised on its own (the logit lens).
    const own = normalizeStack({ kind, stack: pieces, n: 3, rows: 1, D, scales: null, eps: 1e-5 });
    const alone = normalizeRows(pieces.slice(D, 2 * D), 1, D, 1e-5, kind).y;
    for (let d = 0; d < D; d++) assert.ok(Math.abs(own[D + d] - alone[d]) < 1e-6);
  });
}

for (const kind of ["layernorm", "rmsnorm"] as const)
  test(`${kind}: frozen-scale backward matches finite differences with the scale held at its value`, () => {
    const x = vec(2 * D);
    const g = vec(2 * D);
    const { y, scale } = normalize({ kind, x, rows: 2, D, eps: 1e-5, ln });
    const { gInput } = normBackward({ kind, x, scale, ln, gNormalized: g, rows: 2, D, frozenScale: true });
    const live = normBackward({ kind, x, scale, ln, gNormalized: g, rows: 2, D }).gInput;
    for (let r = 0; r < 2; r++) {
      const s = scale[r];
      // The frozen norm in float64: y = (x - mean) / s · w + b with s a constant.
      const frozen = (xs: Float64Array) => {
        const mean = kind === "layernorm" ? xs.reduce((a, v) => a + v, 0) / D : 0;
        return xs.reduce((a, v, d) => a + ((v - mean) / s) * ln.w.data[d] * g[r * D + d], 0);
      };
      const base = Float64Array.from(x.subarray(r * D, (r + 1) * D));
      const h = 1e-6;
      for (let d = 0; d < D; d++) {
        const up = base.slice();
        const down = base.slice();
        up[d] += h;
        down[d] -= h;
        const fd = (frozen(up) - frozen(down)) / (2 * h);
        assert.ok(Math.abs(gInput[r * D + d] - fd) < 1e-4, `row ${r} d ${d}: ${gInput[r * D + d]} vs ${fd}`);
      }
      // The forward is the same norm whichever way its backward goes.
      const want = norm64(kind, base, 1e-5);
      for (let d = 0; d < D; d++) assert.ok(Math.abs(y[r * D + d] - want[d]) < 1e-5);
    }
    // Freezing changes the gradient (the scale depends on x), so the option is not a no-op.
    assert.ok(gInput.some((v, i) => Math.abs(v - live[i]) > 1e-3));
  });
