import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { HookedTransformer } from "../../src/model/hooked-transformer.ts";
import { NO_PROCESSING } from "../../src/model/processing.ts";
import type { Tensor } from "../../src/tensor/tensor.ts";
import { loadCheckpoint, makeRandomCheckpoint } from "../../src/weights/checkpoint.ts";
import type { ModelConfig } from "../../src/weights/config.ts";
import { gpt2Config } from "../../src/weights/families/gpt2.ts";
import { maxAbsDiff } from "../helpers/reference.ts";

const tmp = mkdtempSync(join(tmpdir(), "cs-processing-"));
after(() => rmSync(tmp, { recursive: true, force: true }));

const config: ModelConfig = gpt2Config({
  nLayers: 2,
  nHeads: 3,
  dModel: 24,
  dHead: 8,
  dMlp: 48,
  nCtx: 16,
  dVocab: 50257,
  lnEps: 1e-5,
  act: "gelu_new",
});
const prompts = ["The cat sat on the mat", "We're helping"];

/** raw logits minus their mean over the vocabulary, per position. */
function centred(logits: Tensor): Float32Array {
  const V = logits.shape[2];
  const out = new Float32Array(logits.data.length);
  for (let o = 0; o < out.length; o += V) {
    let m = 0;
    for (let i = 0; i < V; i++) m += logits.data[o + i];
    m /= V;
    for (let i = 0; i < V; i++) out[o + i] = logits.data[o + i] - m;
  }
  return out;
}

const variants = [
  { name: "F32", opts: { dtype: "F32" as const, seed: 1, std: 0.3 } },
  {
    name: "F16 with transformer. prefix and buffers",
    opts: { dtype: "F16" as const, prefix: true, includeBuffers: true, seed: 2, std: 0.3 },
  },
  { name: "BF16, sharded", opts: { dtype: "BF16" as const, shards: 2, seed: 3, std: 0.3 } },
];

for (const { name, opts } of variants) {
  test(`processed logits = raw logits minus their vocab mean (${name})`, () => {
    const dir = join(tmp, name.replace(/\W+/g, "_"));
    makeRandomCheckpoint(dir, config, opts);
    const raw = HookedTransformer.fromCheckpoint(loadCheckpoint(dir), { processing: false }).run(prompts);
    const processed = HookedTransformer.fromCheckpoint(loadCheckpoint(dir)).run(prompts);
    const d = maxAbsDiff(processed.data, centred(raw));
    assert.ok(d < 1e-4, `max diff ${d}`);
    // The processing really changed the weights (the test would be vacuous otherwise).
    assert.ok(maxAbsDiff(processed, raw) > 1e-3);
  });
}

test("each processing step alone preserves what it promises", () => {
  const dir = join(tmp, "steps");
  makeRandomCheckpoint(dir, config, { seed: 4, std: 0.3 });
  const raw = HookedTransformer.fromCheckpoint(loadCheckpoint(dir), { processing: false }).run(prompts);
  for (const step of ["foldLn", "centerWritingWeights", "foldValueBiases"] as const) {
    const logits = HookedTransformer.fromCheckpoint(loadCheckpoint(dir), {
      processing: { ...NO_PROCESSING, [step]: true },
    }).run(prompts);
    const d = maxAbsDiff(logits, raw);
    assert.ok(d < 1e-4, `${step}: logits moved by ${d}`);
  }
  const unembedOnly = HookedTransformer.fromCheckpoint(loadCheckpoint(dir), {
    processing: { ...NO_PROCESSING, centerUnembed: true },
  }).run(prompts);
  assert.ok(maxAbsDiff(unembedOnly.data, centred(raw)) < 1e-4);
});

test("folded models have no LayerNorm weights and zero value biases", () => {
  const dir = join(tmp, "folded");
  makeRandomCheckpoint(dir, config, { seed: 5 });
  const m = HookedTransformer.fromCheckpoint(loadCheckpoint(dir));
  assert.equal(m.weights.lnFinal, null);
  for (const b of m.weights.blocks) {
    assert.equal(b.ln1, null);
    assert.equal(b.ln2, null);
    assert.ok(b.b_V.data.every((x) => x === 0));
    // Centred writing weights: each W_O row sums to ~0 over d_model.
    const D = config.dModel;
    for (let o = 0; o < b.W_O.data.length; o += D) {
      let s = 0;
      for (let d = 0; d < D; d++) s += b.W_O.data[o + d];
      assert.ok(Math.abs(s) < 1e-5);
    }
  }
});
