/**
 * The shared TopK selection (encoding and training use it) against a stable sort of (value desc, column asc),
 * on rows with many ties, offsets into a larger array, k beyond the candidates, and a candidate column list.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { rowTopK } from "../../src/sae/topk.ts";
import { mulberry32 } from "../../src/util/random.ts";

/** Independent statement: sort the candidate columns by value descending, then column ascending. */
function sortedTopK(row: Float32Array, k: number, columns?: number[]): number[] {
  const cand = columns ?? Array.from(row, (_, j) => j);
  return [...cand].sort((a, b) => row[b] - row[a] || a - b).slice(0, k);
}

describe("rowTopK", () => {
  const rng = mulberry32(11);
  // Values from a few levels so that ties are common, some negative.
  const randomRow = (n: number) => Float32Array.from({ length: n }, () => Math.floor(rng() * 7) - 3 + 0.5);

  test("equals sorting (ties to the lower column), at an offset, for k below and above the row", () => {
    for (let trial = 0; trial < 200; trial++) {
      const n = 1 + Math.floor(rng() * 40);
      const k = 1 + Math.floor(rng() * 12);
      const pad = Math.floor(rng() * 5);
      const row = randomRow(n);
      const all = new Float32Array(pad + n + 3).fill(99); // neighbours larger than any value: must be ignored
      all.set(row, pad);
      const out = new Int32Array(k).fill(-1);
      const found = rowTopK(all, pad, n, k, out);
      const want = sortedTopK(row, k);
      assert.equal(found, want.length);
      assert.deepEqual(Array.from(out.subarray(0, found)), want, `n ${n} k ${k}`);
    }
  });

  test("with a candidate column list, only those columns compete", () => {
    for (let trial = 0; trial < 200; trial++) {
      const n = 2 + Math.floor(rng() * 40);
      const k = 1 + Math.floor(rng() * 10);
      const row = randomRow(n);
      const columns = Array.from(row.keys()).filter(() => rng() < 0.4);
      const out = new Int32Array(k);
      const found = rowTopK(row, 0, n, k, out, Int32Array.from(columns));
      assert.deepEqual(Array.from(out.subarray(0, found)), sortedTopK(row, k, columns));
    }
  });

  test("float64 rows (the training code's float64 checks) select as float32 ones", () => {
    const row = Float64Array.from([0.25, -1, 3, 3, 0.25, 2, 3]);
    const out = new Int32Array(4);
    assert.equal(rowTopK(row, 0, row.length, 4, out), 4);
    assert.deepEqual(Array.from(out), [2, 3, 6, 5]);
  });
});
