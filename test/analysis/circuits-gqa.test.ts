import assert from "node:assert/strict";
import { test } from "node:test";
import {
  compositionScores,
  fullOvCircuit,
  fullQkCircuit,
  ovCircuit,
  qkCircuit,
} from "../../src/analysis/circuits.ts";
import type { AnalysisModel } from "../../src/analysis/residual-stack.ts";
import { Tensor } from "../../src/tensor/tensor.ts";
import { mulberry32, randn } from "../../src/util/random.ts";

/**
 * Grouped-query attention: a model storing 2 key/value heads for 6 query heads must give every circuit and
 * composition score exactly as its twin that stores each key/value head repeated for the 3 query heads of
 * its group (repeat_interleave, TransformerLens' W_K / W_V), built here by copying slices.
 */
const L = 2;
const H = 6;
const Hkv = 2;
const D = 12;
const dh = 4;
const V = 10;
const rng = mulberry32(3);
const rand = (shape: number[]) =>
  new Tensor(
    Float32Array.from({ length: shape.reduce((a, b) => a * b, 1) }, () => randn(rng)),
    shape,
  );

function repeatKv(t: Tensor): Tensor {
  const per = D * dh;
  const out = new Float32Array(H * per);
  for (let h = 0; h < H; h++)
    out.set(t.data.subarray(Math.floor(h / (H / Hkv)) * per, (Math.floor(h / (H / Hkv)) + 1) * per), h * per);
  return new Tensor(out, [H, D, dh]);
}

const cfg = { nLayers: L, nHeads: H, dModel: D, dHead: dh, dVocab: V };
const blocks = Array.from({ length: L }, () => ({
  W_Q: rand([H, D, dh]),
  W_K: rand([Hkv, D, dh]),
  W_V: rand([Hkv, D, dh]),
  W_O: rand([H, dh, D]),
}));
const common = { W_E: rand([V, D]), W_U: rand([D, V]) };
const gqa = { cfg, weights: { ...common, blocks } } as unknown as AnalysisModel;
const expanded = {
  cfg,
  weights: { ...common, blocks: blocks.map((b) => ({ ...b, W_K: repeatKv(b.W_K), W_V: repeatKv(b.W_V) })) },
} as unknown as AnalysisModel;

function close(a: ArrayLike<number>, b: ArrayLike<number>, what: string): void {
  assert.equal(a.length, b.length, what);
  for (let i = 0; i < a.length; i++)
    assert.ok(
      Math.abs(a[i] - b[i]) <= 1e-9 * Math.max(1, Math.abs(b[i])),
      `${what}[${i}]: ${a[i]} vs ${b[i]}`,
    );
}

test("GQA circuits read each query head's key/value head (as TransformerLens' repeated W_K / W_V)", () => {
  for (let l = 0; l < L; l++)
    for (let h = 0; h < H; h++) {
      close(qkCircuit(gqa, l, h).AB.data, qkCircuit(expanded, l, h).AB.data, `QK L${l}H${h}`);
      close(ovCircuit(gqa, l, h).AB.data, ovCircuit(expanded, l, h).AB.data, `OV L${l}H${h}`);
      close(fullQkCircuit(gqa, l, h).AB.data, fullQkCircuit(expanded, l, h).AB.data, `full QK L${l}H${h}`);
      close(fullOvCircuit(gqa, l, h).AB.data, fullOvCircuit(expanded, l, h).AB.data, `full OV L${l}H${h}`);
    }
  // Query heads 0..2 share key/value head 0: their QK circuits differ only through W_Q.
  assert.notDeepEqual(qkCircuit(gqa, 0, 0).AB.data, qkCircuit(gqa, 0, 3).AB.data);
});

test("GQA composition scores equal the expanded twin's, for Q, K and V composition", () => {
  for (const mode of ["Q", "K", "V"] as const) {
    const a = compositionScores(gqa, mode);
    const b = compositionScores(expanded, mode);
    close(a, b, `${mode}-composition`);
    assert.ok(
      a.some((x) => x > 0),
      `${mode}: some score is nonzero`,
    );
  }
});
