import assert from "node:assert/strict";
import { test } from "node:test";
import { sampleToken } from "../../src/model/sampling.ts";
import { mulberry32 } from "../../src/util/random.ts";

// Logits whose softmax is exactly [0.6, 0.3, 0.1] (log-probabilities).
const logits = Float32Array.from([Math.log(0.6), Math.log(0.3), Math.log(0.1)]);

function frequencies(opts: Parameters<typeof sampleToken>[1], n = 6000): number[] {
  const rng = mulberry32(5);
  const counts = [0, 0, 0];
  for (let i = 0; i < n; i++) counts[sampleToken(logits, opts, rng)]++;
  return counts.map((c) => c / n);
}

test("temperature 1 samples the softmax; temperature 0 is argmax", () => {
  const f = frequencies({ temperature: 1 });
  for (const [i, p] of [0.6, 0.3, 0.1].entries())
    assert.ok(Math.abs(f[i] - p) < 0.025, `token ${i}: ${f[i]}`);
  assert.equal(sampleToken(logits, { temperature: 0 }, mulberry32(1)), 0);
});

test("temperature 2 flattens: p ∝ sqrt(p)", () => {
  const f = frequencies({ temperature: 2 });
  const w = [0.6, 0.3, 0.1].map(Math.sqrt);
  const z = w.reduce((a, b) => a + b, 0);
  for (const [i, x] of w.entries()) assert.ok(Math.abs(f[i] - x / z) < 0.025);
});

test("top-k and top-p keep the head of the distribution, renormalised", () => {
  const k2 = frequencies({ topK: 2 });
  assert.equal(k2[2], 0);
  assert.ok(Math.abs(k2[0] - 2 / 3) < 0.025);
  // top-p 0.5: the smallest prefix reaching 0.5 is token 0 alone.
  assert.deepEqual(frequencies({ topP: 0.5 }, 500), [1, 0, 0]);
  // top-p 0.85: tokens 0 and 1 (0.9 >= 0.85), renormalised to 2/3, 1/3.
  const p85 = frequencies({ topP: 0.85 });
  assert.equal(p85[2], 0);
  assert.ok(Math.abs(p85[1] - 1 / 3) < 0.025);
  assert.throws(() => sampleToken(logits, { topP: 0 }, mulberry32(1)), /topP must be in \(0, 1\]/);
  assert.throws(() => sampleToken(logits, { topK: 0 }, mulberry32(1)), /topK must be >= 1/);
});
