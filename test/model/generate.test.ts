import assert from "node:assert/strict";
import { test } from "node:test";
import { argmax } from "../../src/model/sampling.ts";
import { loadFixtureModel } from "../helpers/reference.ts";

const model = loadFixtureModel();
const V = model.cfg.dVocab;

test("greedy generation with the key/value cache equals re-running the whole sequence each step", () => {
  const prompt = "We're helping our friend while they";
  const { newTokens, tokens } = model.generate(prompt, { maxNewTokens: 6, temperature: 0, stopAtEos: false });
  assert.equal(newTokens.length, 6);
  const seq = model.toTokens(prompt);
  for (const t of newTokens) {
    const logits = model.run([seq], { logits: "last" });
    const expected = argmax(logits.data.subarray(0, V));
    assert.equal(t, expected);
    seq.push(expected);
  }
  assert.deepEqual(tokens, seq);
});

test("sampling is seeded, respects top-k, and rejects over-long requests", () => {
  const a = model.generate("Hello", { maxNewTokens: 5, seed: 7, stopAtEos: false });
  const b = model.generate("Hello", { maxNewTokens: 5, seed: 7, stopAtEos: false });
  assert.deepEqual(a.newTokens, b.newTokens);
  // top-k 1 is greedy whatever the temperature.
  const greedy = model.generate("Hello", { maxNewTokens: 4, temperature: 0, stopAtEos: false });
  const topk1 = model.generate("Hello", {
    maxNewTokens: 4,
    temperature: 2,
    topK: 1,
    seed: 3,
    stopAtEos: false,
  });
  assert.deepEqual(topk1.newTokens, greedy.newTokens);
  assert.throws(() => model.generate("Hello", { maxNewTokens: 100 }), /exceeds the context of 64/);
});
