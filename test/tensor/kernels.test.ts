import assert from "node:assert/strict";
import { test } from "node:test";
import { createOnnxKernels } from "../../src/tensor/onnx-kernels.ts";
import { referenceKernels } from "../../src/tensor/reference-kernels.ts";
import { mulberry32 } from "../../src/util/random.ts";
import { maxAbsDiff } from "../helpers/reference.ts";

const rng = mulberry32(11);
const rand = (n: number, scale = 1) => Float32Array.from({ length: n }, () => (rng() - 0.5) * 2 * scale);
const onnx = createOnnxKernels();

test("linear forward and backward agree across backends and with a float64 dot product", () => {
  const [K, N, rows] = [37, 53, 5];
  const W = rand(K * N);
  const b = rand(N);
  const x = rand(rows * K);
  const dy = rand(rows * N);
  const ref = referenceKernels.linear(W, K, N, b);
  const fast = onnx.linear(W, K, N, b);
  assert.ok(maxAbsDiff(ref.forward(x, rows), fast.forward(x, rows)) < 1e-5);
  assert.ok(maxAbsDiff(ref.backward(dy, rows), fast.backward(dy, rows)) < 1e-5);
  // One element by hand, in float64.
  let y = b[7];
  for (let k = 0; k < K; k++) y += x[2 * K + k] * W[k * N + 7];
  assert.ok(Math.abs(fast.forward(x, rows)[2 * N + 7] - y) < 1e-5);
  let g = 0;
  for (let n = 0; n < N; n++) g += dy[3 * N + n] * W[11 * N + n];
  assert.ok(Math.abs(fast.backward(dy, rows)[3 * K + 11] - g) < 1e-5);
  assert.equal(fast.forward(new Float32Array(0), 0).length, 0);
  assert.throws(() => fast.forward(rand(3), 1), /expected 1x37/);
});

test("weight() gives back the exact weight; the onnx op keeps no reference to the caller's array", () => {
  // Shapes that make the read-back take several chunks (outDim large against the 4M-element chunk).
  for (const [K, N] of [
    [37, 53],
    [300, 20000],
  ]) {
    const W = rand(K * N, 3);
    const b = rand(N);
    const original = Float32Array.from(W);
    const x = rand(2 * K);
    const fast = onnx.linear(W, K, N, b);
    const before = fast.forward(x, 2);
    W.fill(Number.NaN); // the caller drops (here: spoils) its copy; the op must not depend on it
    assert.deepEqual(fast.weight(), original, `onnx weight() of [${K}, ${N}] is bit-exact`);
    assert.deepEqual(fast.forward(x, 2), before);
    const dy = rand(2 * N);
    const expected = referenceKernels.linear(original, K, N).backward(dy, 2);
    const scale = expected.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
    assert.ok(
      maxAbsDiff(fast.backward(dy, 2), expected) < 1e-5 * scale,
      "backward built from the read-back weight",
    );
    fast.dispose();
  }
  const W = rand(6);
  assert.equal(
    referenceKernels.linear(W, 2, 3).weight(),
    W,
    "the reference op computes from the array it was given",
  );
});

test("bmm agrees across backends, with and without transposed b", () => {
  const [batch, m, k, n] = [6, 4, 9, 7];
  const a = rand(batch * m * k);
  const b = rand(batch * k * n);
  for (const transB of [false, true]) {
    const r = referenceKernels.bmm(a, b, batch, m, k, n, transB);
    const f = onnx.bmm(a, b, batch, m, k, n, transB);
    assert.ok(maxAbsDiff(r, f) < 1e-5);
    // element (t=5, i=3, j=6) by hand
    let s = 0;
    for (let e = 0; e < k; e++)
      s += a[(5 * m + 3) * k + e] * (transB ? b[(5 * n + 6) * k + e] : b[(5 * k + e) * n + 6]);
    assert.ok(Math.abs(f[(5 * m + 3) * n + 6] - s) < 1e-5);
  }
});

test("activations agree across backends and with the closed forms", () => {
  const x = rand(1000, 6);
  for (const kind of ["gelu_new", "gelu", "relu"] as const) {
    const d = maxAbsDiff(referenceKernels.activation(kind, x), onnx.activation(kind, x));
    assert.ok(d < 2e-6, `${kind}: ${d}`);
  }
  const g = onnx.activation("gelu_new", x);
  for (const i of [0, 500, 999]) {
    const v = x[i];
    const exact = 0.5 * v * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (v + 0.044715 * v ** 3)));
    assert.ok(Math.abs(g[i] - exact) < 2e-6);
  }
});
