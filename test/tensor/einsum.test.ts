/** einsum against loops written out with index arithmetic (float64), on tensors and on strided views. */
import assert from "node:assert/strict";
import { test } from "node:test";
import { einsum } from "../../src/tensor/einsum.ts";
import { Tensor } from "../../src/tensor/tensor.ts";

/** Deterministic values in [-1, 1). */
function filled(shape: number[], seed: number): Tensor {
  const n = shape.reduce((a, b) => a * b, 1);
  let s = seed;
  return new Tensor(
    Float32Array.from({ length: n }, () => {
      s = (s * 1103515245 + 12345) % 2147483648;
      return s / 1073741824 - 1;
    }),
    shape,
  );
}
const close = (a: number, b: number) => Math.abs(a - b) <= 1e-5 * Math.max(1, Math.abs(b));

test("bhqk,bhkd->bhqd (attention applied to values) equals the written-out sum", () => {
  const [B, H, Q, K, D] = [2, 3, 4, 4, 5];
  const p = filled([B, H, Q, K], 1);
  const v = filled([B, H, K, D], 2);
  const out = einsum("bhqk,bhkd->bhqd", p, v);
  assert.deepEqual(out.shape, [B, H, Q, D]);
  for (let b = 0; b < B; b++)
    for (let h = 0; h < H; h++)
      for (let q = 0; q < Q; q++)
        for (let d = 0; d < D; d++) {
          let s = 0;
          for (let k = 0; k < K; k++)
            s += p.data[((b * H + h) * Q + q) * K + k] * v.data[((b * H + h) * K + k) * D + d];
          assert.ok(close(out.data[((b * H + h) * Q + q) * D + d], s));
        }
});

test("transpose, trace, outer product and a full sum", () => {
  const a = filled([3, 4], 3);
  const t = einsum("ij->ji", a);
  for (let i = 0; i < 3; i++) for (let j = 0; j < 4; j++) assert.equal(t.data[j * 3 + i], a.data[i * 4 + j]);
  const sq = filled([4, 4], 4);
  let tr = 0;
  for (let i = 0; i < 4; i++) tr += sq.data[i * 4 + i];
  assert.ok(close(einsum("ii->", sq).data[0], tr));
  const x = filled([3], 5);
  const y = filled([2], 6);
  const o = einsum("i,j->ij", x, y);
  for (let i = 0; i < 3; i++)
    for (let j = 0; j < 2; j++) assert.ok(close(o.data[i * 2 + j], x.data[i] * y.data[j]));
  let total = 0;
  for (const v of a.data) total += v;
  assert.ok(close(einsum("ij->", a).data[0], total));
});

test("operands may be strided views: a head's slice of hook_z times its W_O block", () => {
  const [P, H, dh, D] = [3, 2, 4, 5];
  const z = filled([P, H, dh], 7); // [pos, head, d_head]
  const W_O = filled([H, dh, D], 8);
  const h = 1;
  const out = einsum("pe,ed->pd", z.select(1, h), W_O.select(0, h));
  for (let p = 0; p < P; p++)
    for (let d = 0; d < D; d++) {
      let s = 0;
      for (let e = 0; e < dh; e++) s += z.data[(p * H + h) * dh + e] * W_O.data[(h * dh + e) * D + d];
      assert.ok(close(out.data[p * D + d], s));
    }
});

test("bad specs are errors that say what is wrong", () => {
  const a = filled([2, 3], 9);
  assert.throws(() => einsum("ij,jk", a, a), /explicit output/);
  assert.throws(() => einsum("ij,jk->ik", a, a), /dim "j" is 3 in one place and 2 in another/);
  assert.throws(() => einsum("ijk->i", a), /operand 0 has 2 dims/);
  assert.throws(() => einsum("ij->ik", a), /output dim "k" is in no operand/);
});
