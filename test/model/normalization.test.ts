/** The one normalisation module: LayerNorm and RMSNorm forward, stack normalisation and backward. */
import assert from "node:assert/strict";
import { test } from "node:test";
import {
  applyNormAffine,
  type NormKind,
  normalize,
  normalizeRows,
  normalizeShares,
  normalizeSharesBackward,
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

for (const kind of ["layernorm", "rmsnorm"] as const)
  test(`${kind}: shares of a sum add to its norm less the bias; their backward = finite differences in float64`, () => {
    const n = 3;
    const rows = 2;
    const eps = 1e-5;
    const pieces = vec(n * rows * D);
    const g = vec(n * rows * D); // d/d each share
    const { shares, scale } = normalizeShares({ kind, pieces, n, rows, D, eps, ln });
    // Each share written out in float64: w ⊙ centre(piece_i) / scale(Σ pieces), for one row r.
    const shares64 = (ps: Float64Array, r: number): Float64Array[] => {
      const sum = new Float64Array(D);
      for (let i = 0; i < n; i++) for (let d = 0; d < D; d++) sum[d] += ps[(i * rows + r) * D + d];
      const centre = (x: Float64Array) => {
        const mean = kind === "layernorm" ? x.reduce((a, v) => a + v, 0) / D : 0;
        return x.map((v) => v - mean);
      };
      const cs = centre(sum);
      const s = Math.sqrt(cs.reduce((a, v) => a + v * v, 0) / D + eps);
      return Array.from({ length: n }, (_, i) =>
        centre(ps.slice((i * rows + r) * D, (i * rows + r + 1) * D)).map((v, d) => (v / s) * ln.w.data[d]),
      );
    };
    const p64 = Float64Array.from(pieces);
    for (let r = 0; r < rows; r++) {
      const want = shares64(p64, r);
      const total = new Float64Array(D);
      for (let i = 0; i < n; i++)
        for (let d = 0; d < D; d++) {
          assert.ok(Math.abs(shares[(i * rows + r) * D + d] - want[i][d]) < 1e-5);
          total[d] += shares[(i * rows + r) * D + d];
        }
      // Σ shares + b = the norm of the sum, independently.
      const sum = new Float64Array(D);
      for (let i = 0; i < n; i++) for (let d = 0; d < D; d++) sum[d] += pieces[(i * rows + r) * D + d];
      const normed = norm64(kind, sum, eps);
      for (let d = 0; d < D; d++) assert.ok(Math.abs(total[d] + ln.b.data[d] - normed[d]) < 1e-5);
    }
    // loss = Σ_i ⟨g_i, share_i⟩; its gradient in every piece, through the common scale too.
    const loss = (ps: Float64Array) => {
      let a = 0;
      for (let r = 0; r < rows; r++)
        shares64(ps, r).forEach((sh, i) => {
          for (let d = 0; d < D; d++) a += sh[d] * g[(i * rows + r) * D + d];
        });
      return a;
    };
    const grad = normalizeSharesBackward({ kind, pieces, n, rows, D, scale, ln, gShares: g });
    const h = 1e-6;
    for (let k = 0; k < pieces.length; k++) {
      const up = p64.slice();
      const down = p64.slice();
      up[k] += h;
      down[k] -= h;
      const fd = (loss(up) - loss(down)) / (2 * h);
      assert.ok(Math.abs(grad[k] - fd) < 1e-4, `value ${k}: ${grad[k]} vs ${fd}`);
    }
  });
