/**
 * Shape-aware tensor access against independent index arithmetic: every read goes through the view's
 * strides, every expected value through the row-major formula ((b*H + h)*Q + q)*K + k written out by
 * hand, and reductions against float64 loops.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { nest, stridesOf, Tensor, unravelIndex } from "../../src/tensor/tensor.ts";
import { TensorView } from "../../src/tensor/tensor-view.ts";

const [B, H, Q, K] = [2, 3, 4, 5];
/** data[i] = i * 0.5 - 7, so every element is distinct and its value tells its flat offset. */
function pattern(): Tensor {
  return new Tensor(
    Float32Array.from({ length: B * H * Q * K }, (_, i) => i * 0.5 - 7),
    [B, H, Q, K],
    ["batch", "head", "query", "key"],
  );
}
const flat = (b: number, h: number, q: number, k: number) => ((b * H + h) * Q + q) * K + k;

test("get(b, h, q, k) reads the row-major element, negative indices from the end; out of range is an error", () => {
  const t = pattern();
  for (let b = 0; b < B; b++)
    for (let h = 0; h < H; h++)
      for (let q = 0; q < Q; q++)
        for (let k = 0; k < K; k++) assert.equal(t.get(b, h, q, k), t.data[flat(b, h, q, k)]);
  assert.equal(t.get(-1, -1, -1, -1), t.data[flat(B - 1, H - 1, Q - 1, K - 1)]);
  assert.throws(() => t.get(0, H, 0, 0), /Index 3 out of range for axis 1/);
  assert.throws(() => t.get(0, 0, 0), /Index has 3 dims, tensor has 4/);
});

test("select by number or by name drops the dim and reads the same elements, as a view of the same memory", () => {
  const t = pattern();
  const h2 = t.select("head", 2); // [batch, query, key]
  assert.deepEqual(h2.shape, [B, Q, K]);
  assert.deepEqual(h2.dims, ["batch", "query", "key"]);
  for (let b = 0; b < B; b++)
    for (let q = 0; q < Q; q++)
      for (let k = 0; k < K; k++) assert.equal(h2.get(b, q, k), t.data[flat(b, 2, q, k)]);
  const q3 = t.select(2, 3).select(-1, 1); // [batch, head] at query 3, key 1
  for (let b = 0; b < B; b++)
    for (let h = 0; h < H; h++) assert.equal(q3.get(b, h), t.data[flat(b, h, 3, 1)]);
  assert.equal(h2.storage, t.data, "a view shares the tensor's memory");
  h2.set(123, 1, 0, 4);
  assert.equal(t.data[flat(1, 2, 0, 4)], 123);
  assert.throws(
    () => t.select("pos", 0),
    /No dim named "pos": this tensor's dims are \[batch, head, query, key\]/,
  );
});

test("slice follows Python's start:end:step (negatives, clamped bounds) on any dim", () => {
  const t = pattern();
  const cases: [number, number | undefined, number][] = [
    [1, 4, 2],
    [-3, undefined, 1],
    [0, 100, 3],
    [4, 2, 1],
  ];
  for (const [start, end, step] of cases) {
    const s = t.slice("key", start, end, step);
    const ks = [0, 1, 2, 3, 4].slice(start, end).filter((_, i) => i % step === 0);
    assert.deepEqual(s.shape, [B, H, Q, ks.length], `${start}:${end}:${step}`);
    for (let b = 0; b < B; b++)
      for (let h = 0; h < H; h++)
        for (let q = 0; q < Q; q++)
          ks.forEach((k, j) => {
            assert.equal(s.get(b, h, q, j), t.data[flat(b, h, q, k)]);
          });
  }
  assert.throws(() => t.slice(0, 0, 1, 0), /step must be a positive integer/);
});

test("sum and mean over numbered or named dims equal float64 loops; over nothing, the whole tensor", () => {
  const t = pattern();
  const sumHK = t.sum(["head", "key"]); // [batch, query]
  assert.deepEqual(sumHK.shape, [B, Q]);
  assert.deepEqual(sumHK.dims, ["batch", "query"]);
  for (let b = 0; b < B; b++)
    for (let q = 0; q < Q; q++) {
      let s = 0;
      for (let h = 0; h < H; h++) for (let k = 0; k < K; k++) s += t.data[flat(b, h, q, k)];
      assert.ok(Math.abs(sumHK.get(b, q) - s) < 1e-4, `sum b${b} q${q}`);
    }
  const meanB = t.mean(0); // [head, query, key]
  for (let h = 0; h < H; h++)
    for (let q = 0; q < Q; q++)
      for (let k = 0; k < K; k++) {
        const m = (t.data[flat(0, h, q, k)] + t.data[flat(1, h, q, k)]) / 2;
        assert.ok(Math.abs(meanB.get(h, q, k) - m) < 1e-5);
      }
  let total = 0;
  for (const x of t.data) total += x;
  assert.ok(Math.abs(t.sum() - total) < 1e-9);
  assert.ok(Math.abs(t.mean() - total / t.size) < 1e-9);
  // A reduction of a strided view reads only the view's elements.
  const v = t.select("query", 2).slice("key", 1, 4);
  let vs = 0;
  for (let b = 0; b < B; b++)
    for (let h = 0; h < H; h++) for (let k = 1; k < 4; k++) vs += t.data[flat(b, h, 2, k)];
  assert.ok(Math.abs(v.sum() - vs) < 1e-9);
});

test("toNested of a view and of a tensor match nest() of the values gathered by index arithmetic", () => {
  const t = pattern();
  assert.deepEqual(t.toNested(), nest(t.data, t.shape));
  const v = t.select("batch", 1).slice("query", 1, 3);
  const gathered: number[] = [];
  for (let h = 0; h < H; h++)
    for (let q = 1; q < 3; q++) for (let k = 0; k < K; k++) gathered.push(t.data[flat(1, h, q, k)]);
  assert.deepEqual(v.toNested(), nest(gathered, [H, 2, K]));
  assert.deepEqual(Array.from(v.toArray()), gathered);
});

test("fill and assign write through a head's view: a head ablation and a position patch without index arithmetic", () => {
  // hook_z is [batch, pos, head, d_head]: zero head 1 everywhere.
  const [P, D] = [3, 2];
  const z = new Tensor(
    Float32Array.from({ length: B * P * H * D }, (_, i) => i + 1),
    [B, P, H, D],
  );
  z.select(2, 1).fill(0);
  z.data.forEach((x, i) => {
    const [, , h] = unravelIndex(i, z.shape);
    assert.equal(x === 0, h === 1, `element ${i}`);
  });
  // resid is [batch, pos, d_model]: copy position 2 from another run.
  const a = new Tensor(new Float32Array(B * P * D), [B, P, D]);
  const src = new Tensor(
    Float32Array.from({ length: B * P * D }, (_, i) => 100 + i),
    [B, P, D],
  );
  a.select(1, 2).assign(src.select(1, 2));
  const [sb, sp] = stridesOf(a.shape);
  for (let b = 0; b < B; b++)
    for (let p = 0; p < P; p++)
      for (let d = 0; d < D; d++) {
        const o = b * sb + p * sp + d;
        assert.equal(a.data[o], p === 2 ? src.data[o] : 0);
      }
  assert.throws(() => a.select(1, 0).assign(src), /Cannot assign shape \[2, 3, 2\]/);
});

test("contiguous() shares memory for a contiguous range and copies a strided view", () => {
  const t = pattern();
  const row = t.select(0, 1).contiguous();
  assert.equal(row.data.buffer, t.data.buffer);
  assert.equal(row.data.byteOffset, flat(1, 0, 0, 0) * 4);
  const strided = t.select("head", 1).contiguous();
  assert.notEqual(strided.data.buffer, t.data.buffer);
  assert.equal(strided.get(1, 2, 3), t.data[flat(1, 1, 2, 3)]);
  assert.deepEqual(strided.dims, ["batch", "query", "key"]);
});

test("a TensorView over a Float64Array (a patching result) reads by the same arithmetic", () => {
  const v = TensorView.of(
    Float64Array.from({ length: 12 }, (_, i) => i / 3),
    [3, 4],
    ["layer", "head"],
  );
  assert.equal(v.select("layer", 2).get(1), (2 * 4 + 1) / 3);
  assert.ok(Math.abs(v.mean("head").get(1) - (4 + 5 + 6 + 7) / 3 / 4) < 1e-6); // reductions return float32
});
