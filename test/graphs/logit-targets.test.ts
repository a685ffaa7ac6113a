/** Logit targets: circuit-tracer's smallest top set reaching 0.95 (at most 10), or the tokens asked for. */
import assert from "node:assert/strict";
import { test } from "node:test";
import { selectLogitTargets } from "../../src/graphs/logit-targets.ts";

/** Logits whose softmax is exactly `probs` (log of each). */
const logitsOf = (probs: number[]) => Float32Array.from(probs, Math.log);

test("the top tokens until their probabilities first reach 0.95", () => {
  // sorted: .5 (id 2), .3 (id 0), .16 (id 3) -> .96 ≥ .95 after three
  const r = selectLogitTargets(logitsOf([0.3, 0.02, 0.5, 0.16, 0.02]));
  assert.deepEqual(r.tokens, [2, 0, 3]);
  r.probabilities.forEach((p, i) => {
    assert.ok(Math.abs(p - [0.5, 0.3, 0.16][i]) < 1e-6);
  });
  // exactly reaching the threshold stops there (searchsorted's left side): the threshold is the first two's sum
  const logits = logitsOf([0.5, 0.25, 0.25]);
  const [p0, p1] = selectLogitTargets(logits, { targets: [0, 1] }).probabilities;
  assert.deepEqual(selectLogitTargets(logits, { desiredProbability: p0 + p1 }).tokens, [0, 1]);
});

test("at most 10 tokens however flat the distribution", () => {
  const flat = new Float32Array(50);
  const r = selectLogitTargets(flat);
  assert.deepEqual(r.tokens, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
  for (const p of r.probabilities) assert.ok(Math.abs(p - 1 / 50) < 1e-9);
  assert.equal(selectLogitTargets(flat, { maxLogits: 3 }).tokens.length, 3);
});

test("--target tokens are kept in the order given with their probabilities; bad ones refused", () => {
  const r = selectLogitTargets(logitsOf([0.3, 0.02, 0.5, 0.16, 0.02]), { targets: [4, 2] });
  assert.deepEqual(r.tokens, [4, 2]);
  assert.ok(Math.abs(r.probabilities[0] - 0.02) < 1e-7 && Math.abs(r.probabilities[1] - 0.5) < 1e-7);
  assert.throws(
    () => selectLogitTargets(new Float32Array(5), { targets: [5] }),
    /outside the vocabulary \(0..4\)/,
  );
  assert.throws(() => selectLogitTargets(new Float32Array(5), { targets: [1, 1] }), /given twice/);
});
