/**
 * `Kernels.graph` on onnxruntime: an `OpGraph` (plain data) compiles to one session whose outputs equal the
 * same computation done here by hand — every dtype a graph may take or give (float32, int64, int32, bool),
 * constants baked in (an int64 axes list, a float scalar), a symbolic batch size, integer and string
 * attributes — and bad use is refused by name.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { createOnnxKernels } from "../../src/tensor/onnx-kernels.ts";
import { node, type OpGraph } from "../../src/tensor/op-graph.ts";
import { referenceKernels } from "../../src/tensor/reference-kernels.ts";

/** y = Σ_j (x[r, j] where mask[j], else 0) · scale, per row; top = the 2 largest columns of x + 1 as int32. */
const graph: OpGraph = {
  name: "probe",
  inputs: [
    { name: "x", dtype: "float32", dims: ["B", 4] },
    { name: "mask", dtype: "bool", dims: [4] },
    { name: "k", dtype: "int64", dims: [1] },
  ],
  outputs: [
    { name: "y", dtype: "float32", dims: ["B"] },
    { name: "top", dtype: "int32", dims: ["B", 2] },
  ],
  constants: [
    { name: "axis1", dtype: "int64", dims: [1], values: [1] },
    { name: "scale", dtype: "float32", dims: [], values: [0.5] },
    { name: "zero", dtype: "float32", dims: [], values: [0] },
    { name: "one", dtype: "int64", dims: [], values: [1] },
  ],
  nodes: [
    node("Where", ["mask", "x", "zero"], ["kept"]),
    node("ReduceSum", ["kept", "axis1"], ["sum"], { keepdims: 0 }),
    node("Mul", ["sum", "scale"], ["y"]),
    node("TopK", ["x", "k"], ["values", "at"], { axis: -1, largest: 1 }),
    node("Add", ["at", "one"], ["at1"]),
    node("Cast", ["at1"], ["top"], { to: 6 }),
  ],
};

describe("Kernels.graph (onnxruntime)", () => {
  const kernels = createOnnxKernels({ threads: 1 });
  test("a compiled graph computes what its operators say, for a batch size given at run time", () => {
    const g = kernels.graph!(graph);
    for (const B of [1, 3]) {
      const x = Float32Array.from({ length: B * 4 }, (_, i) => ((i * 7) % 5) - 1.5 + i / 10);
      const mask = Uint8Array.of(1, 0, 1, 1);
      const out = g.run({
        x: { data: x, dims: [B, 4] },
        mask: { data: mask, dims: [4] },
        k: { data: BigInt64Array.of(2n), dims: [1] },
      });
      const y = out.y as Float32Array;
      const top = out.top as Int32Array;
      assert.ok(top instanceof Int32Array);
      assert.equal(y.length, B);
      for (let r = 0; r < B; r++) {
        const row = [...x.subarray(r * 4, r * 4 + 4)];
        const want = row.reduce((a, v, j) => a + (mask[j] ? v : 0), 0) * 0.5;
        assert.ok(Math.abs(y[r] - want) < 1e-6, `row ${r}: ${y[r]} vs ${want}`);
        const order = [0, 1, 2, 3].sort((a, b) => row[b] - row[a] || a - b);
        assert.deepEqual([...top.subarray(r * 2, r * 2 + 2)], [order[0] + 1, order[1] + 1]);
      }
    }
    g.dispose();
    assert.throws(() => g.run({}), /run after dispose/);
  });
  test("a missing feed is refused by name; the reference kernels have no graphs", () => {
    const g = kernels.graph!(graph);
    assert.throws(
      () =>
        g.run({
          x: { data: new Float32Array(4), dims: [1, 4] },
          k: { data: BigInt64Array.of(1n), dims: [1] },
        }),
      /no feed for input mask/,
    );
    g.dispose();
    assert.equal(referenceKernels.graph, undefined);
  });
});
