/** The one logit readout: a direction through W_U, its value, and its gradient, against the model's own logits. */
import assert from "node:assert/strict";
import { test } from "node:test";
import { unembedOp } from "../../src/model/block-ops.ts";
import { addReadoutGradient, readoutDirection, readoutValue, unembedRows } from "../../src/model/readout.ts";
import { mulberry32, randn } from "../../src/util/random.ts";
import { loadFixtureModel, referenceJson } from "../helpers/reference.ts";

const model = loadFixtureModel();
const { dModel: D, dVocab: V } = model.cfg;
const rng = mulberry32(31);
const y = Float32Array.from({ length: 2 * D }, () => randn(rng));
const { answer_token: answer, wrong_token: wrong } = referenceJson.prompts;

test("readoutValue of a token's direction is that token's logit from the full unembedding op", () => {
  const logits = unembedRows(model, y, 2); // [2, V], the kernels' product
  for (const t of [0, answer, wrong, V - 1])
    for (let r = 0; r < 2; r++) {
      const got = readoutValue(readoutDirection(model.weights, t), y, r * D);
      assert.ok(
        Math.abs(got - logits[r * V + t]) < 1e-4,
        `token ${t} row ${r}: ${got} vs ${logits[r * V + t]}`,
      );
    }
});

test("a logit difference reads the difference of the two logits, in float64 from W_U itself", () => {
  const r = readoutDirection(model.weights, answer, wrong);
  const WU = model.weights.W_U.data;
  const bU = model.weights.b_U.data;
  let want = bU[answer] - bU[wrong];
  for (let d = 0; d < D; d++) want += y[D + d] * (WU[d * V + answer] - WU[d * V + wrong]);
  assert.ok(Math.abs(readoutValue(r, y, D) - want) < 1e-9);
  const logits = unembedRows(model, y.subarray(D), 1);
  assert.ok(Math.abs(readoutValue(r, y, D) - (logits[answer] - logits[wrong])) < 1e-4);
});

test("the readout's gradient equals the unembedding op's backward of a one-hot seed, and accumulates", () => {
  const seed = new Float32Array(V);
  seed[answer] = 0.5;
  seed[wrong] = -2;
  const want = unembedOp(model).backward(seed, 1); // dy = seed @ W_U^T
  const g = new Float32Array(2 * D);
  addReadoutGradient(readoutDirection(model.weights, answer), 0.5, g, D);
  addReadoutGradient(readoutDirection(model.weights, wrong), -2, g, D);
  for (let d = 0; d < D; d++) {
    assert.equal(g[d], 0, "only the rows at the offset move");
    assert.ok(Math.abs(g[D + d] - want[d]) < 1e-5, `d ${d}: ${g[D + d]} vs ${want[d]}`);
  }
});

test("a token outside the vocabulary is refused by name", () => {
  assert.throws(
    () => readoutDirection(model.weights, V),
    /Token 50257 is outside the vocabulary \[0, 50257\)/,
  );
  assert.throws(() => readoutDirection(model.weights, 1, -1), /Token -1 is outside/);
});
