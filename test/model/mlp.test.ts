/** The one MLP module: plain and gated, forward and backward, against float64 from the definitions. */
import assert from "node:assert/strict";
import { test } from "node:test";
import { type MlpOps, mlpBackward, mlpForward } from "../../src/model/mlp.ts";
import type { Activation } from "../../src/tensor/activations.ts";
import { getKernels } from "../../src/tensor/select-kernels.ts";
import { mulberry32, randn } from "../../src/util/random.ts";

const kernels = getKernels("reference");
const rng = mulberry32(11);
const vec = (n: number, std = 0.5) => Float32Array.from({ length: n }, () => std * randn(rng));
const D = 5;
const M = 7;
const rows = 3;

/** One row of the MLP in float64: W_in [D, M], W_gate [D, M] or null, W_out [M, D]. */
function mlp64(
  x: Float64Array,
  w: {
    W_in: Float32Array;
    b_in: Float32Array;
    W_gate: Float32Array | null;
    W_out: Float32Array;
    b_out: Float32Array;
  },
  act: Activation,
): Float64Array {
  const proj = (W: Float32Array, b: Float32Array | null) =>
    Float64Array.from({ length: M }, (_, m) => {
      let s = b ? b[m] : 0;
      for (let d = 0; d < D; d++) s += x[d] * W[d * M + m];
      return s;
    });
  const up = proj(w.W_in, w.b_in);
  const f = (v: number) => act64(act, v);
  const post = w.W_gate ? proj(w.W_gate, null).map((g, m) => f(g) * up[m]) : up.map(f);
  return Float64Array.from({ length: D }, (_, d) => {
    let s = w.b_out[d];
    for (let m = 0; m < M; m++) s += post[m] * w.W_out[m * D + d];
    return s;
  });
}

/** The non-linearities in float64, from their definitions (tanh-approximated GELU, SiLU). */
function act64(act: Activation, x: number): number {
  if (act === "silu") return x / (1 + Math.exp(-x));
  if (act === "gelu_new") return 0.5 * x * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (x + 0.044715 * x ** 3)));
  throw new Error(`no float64 reference for ${act}`);
}

for (const [kind, act] of [
  ["plain", "gelu_new"],
  ["gated", "silu"],
] as const) {
  test(`${kind} MLP (${act}): forward and backward match float64 and finite differences`, () => {
    const w = {
      W_in: vec(D * M),
      b_in: vec(M),
      W_gate: kind === "gated" ? vec(D * M) : null,
      W_out: vec(M * D),
      b_out: vec(D),
    };
    const ops: MlpOps = {
      mlpIn: kernels.linear(w.W_in, D, M, w.b_in),
      mlpGate: w.W_gate ? kernels.linear(w.W_gate, D, M, null) : null,
      mlpOut: kernels.linear(w.W_out, M, D, w.b_out),
    };
    const x = vec(rows * D, 1);
    const seen: string[] = [];
    const { out, saved } = mlpForward({
      ops,
      kernels,
      act,
      x,
      rows,
      fire: (hook, v) => {
        seen.push(hook);
        return v;
      },
    });
    assert.deepEqual(seen, kind === "gated" ? ["pre", "pre_linear", "post"] : ["pre", "post"]);
    assert.equal(saved.up === null, kind === "plain");
    for (let r = 0; r < rows; r++) {
      const want = mlp64(Float64Array.from(x.subarray(r * D, (r + 1) * D)), w, act);
      for (let d = 0; d < D; d++)
        assert.ok(Math.abs(out[r * D + d] - want[d]) < 1e-5, `${out[r * D + d]} vs ${want[d]}`);
    }
    // Backward of Σ gOut · out, through W_out first (as the passes call it).
    const gOut = vec(rows * D, 1);
    const gPost = ops.mlpOut.backward(gOut, rows);
    const g = mlpBackward({ ops, kernels, act, saved, gPost, rows });
    const loss = (xs: Float64Array, r: number) =>
      mlp64(xs, w, act).reduce((a, v, d) => a + v * gOut[r * D + d], 0);
    const h = 1e-6;
    for (let r = 0; r < rows; r++)
      for (let d = 0; d < D; d++) {
        const base = Float64Array.from(x.subarray(r * D, (r + 1) * D));
        const up = base.slice();
        const down = base.slice();
        up[d] += h;
        down[d] -= h;
        const fd = (loss(up, r) - loss(down, r)) / (2 * h);
        assert.ok(
          Math.abs(g.gInput[r * D + d] - fd) < 1e-4,
          `row ${r} d ${d}: ${g.gInput[r * D + d]} vs ${fd}`,
        );
      }
    // d/d pre_linear of a gated MLP is g · act(pre): the hook's own gradient.
    if (kind === "gated") {
      const a = act64(act, saved.pre[0]);
      assert.ok(Math.abs((g.gUp as Float32Array)[0] - gPost[0] * a) < 1e-6);
    } else assert.equal(g.gUp, null);
  });
}
