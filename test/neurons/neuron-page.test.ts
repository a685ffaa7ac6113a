import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { sotuSource } from "../../src/corpus/sources.ts";
import { HookedTransformer } from "../../src/model/hooked-transformer.ts";
import { buildIndex } from "../../src/neurons/build-index.ts";
import { NeuronIndex } from "../../src/neurons/neuron-index.ts";
import { neuronLogitEffect, neuronPageData } from "../../src/neurons/neuron-page.ts";
import { writeNeuronReport } from "../../src/neurons/neuron-report.ts";
import { formatNeuronPage } from "../../src/neurons/neuron-text.ts";
import { loadCheckpoint } from "../../src/weights/checkpoint.ts";
import { FIXTURE_DIR } from "../helpers/fixture.ts";

let model: HookedTransformer;
let dir: string;
let index: NeuronIndex;
const LAYER = 1;
const NEURON = 37;

before(async () => {
  model = HookedTransformer.fromCheckpoint(loadCheckpoint(FIXTURE_DIR), { backend: "reference" });
  dir = mkdtempSync(join(tmpdir(), "circuitscope-page-"));
  await buildIndex(model, sotuSource(), {
    outDir: join(dir, "index"),
    modelName: "tiny",
    layers: [1, 2],
    contextLen: 48,
    maxTokens: 48 * 12,
    topK: 6,
  });
  index = NeuronIndex.open(join(dir, "index"));
});
after(() => rmSync(dir, { recursive: true, force: true }));

describe("neuron page", () => {
  test("examples: stored max equals the recomputed activation there, and is the context's max", () => {
    const page = neuronPageData(model, LAYER, NEURON, { index });
    const ix = page.index!;
    assert.equal(ix.examples.length, 6);
    assert.equal(ix.tokens, 48 * 12);
    for (const e of ix.examples) {
      assert.equal(e.activations.length, e.strTokens.length);
      assert.ok(Math.abs(e.activations[e.position] - e.value) < 1e-5);
      // Any token of the context above this example must itself be a kept example (top-k is per token).
      e.activations.forEach((a, p) => {
        if (a > e.value + 1e-6) {
          assert.ok(
            ix.examples.some((x) => x.contextId === e.contextId && x.position === p),
            `ctx ${e.contextId} pos ${p}`,
          );
        }
      });
      assert.ok(e.window[0] <= e.position && e.position < e.window[1]);
    }
    const values = ix.examples.map((e) => e.value);
    assert.deepEqual(
      values,
      [...values].sort((a, b) => b - a),
    );
    assert.equal(
      ix.histogram.counts.reduce((a, b) => a + b, 0),
      ix.tokens,
    );
    assert.ok(ix.density > 0 && ix.density < 1);
    assert.throws(() => neuronPageData(model, 0, NEURON, { index }), /no layer 0.*--layers/);
  });

  test("activation on your own text matches a full, unfiltered cache", () => {
    const text = "The President don\u2019t say that, and Congress won't either.";
    const page = neuronPageData(model, LAYER, NEURON, { text });
    const tokens = model.toTokens(text.replace("\u2019", "'"));
    assert.deepEqual(page.ownText!.strTokens, model.toStrTokens(tokens));
    const { cache } = model.runWithCache([tokens]);
    const acts = cache.get(`blocks.${LAYER}.mlp.hook_post`);
    const expected = tokens.map((_, p) => acts.at(0, p, NEURON));
    for (const [p, a] of page.ownText!.activations.entries())
      assert.ok(Math.abs(a - expected[p]) < 1e-5, `token ${p}`);
  });

  test("direct logit effect is W_out[n] @ W_U and its extremes are sorted", () => {
    const effect = neuronLogitEffect(model, LAYER, NEURON);
    const { W_out } = model.weights.blocks[LAYER];
    const { W_U } = model.weights;
    for (const v of [0, 13, 50256]) {
      let dot = 0;
      for (let d = 0; d < model.cfg.dModel; d++) dot += W_out.at(NEURON, d) * W_U.at(d, v);
      assert.ok(Math.abs(effect[v] - dot) < 1e-5, `token ${v}`);
    }
    const page = neuronPageData(model, LAYER, NEURON);
    const max = effect.reduce((a, b) => Math.max(a, b), -Infinity);
    const min = effect.reduce((a, b) => Math.min(a, b), Infinity);
    assert.equal(page.logitEffect.top[0].value, max);
    assert.equal(page.logitEffect.bottom[0].value, min);
    assert.equal(page.logitEffect.top.length, 10);
    for (let i = 1; i < 10; i++)
      assert.ok(page.logitEffect.top[i].value <= page.logitEffect.top[i - 1].value);
  });

  test("text and HTML renderings show the examples", () => {
    const page = neuronPageData(model, LAYER, NEURON, { index, text: "Hello there" });
    const text = formatNeuronPage(page);
    assert.match(text, /Neuron L1 N37/);
    const e = page.index!.examples[0];
    assert.ok(text.includes(`[[${e.strTokens[e.position]}]]`));
    const html = join(dir, "page.html");
    writeNeuronReport(html, page);
    const content = readFileSync(html, "utf8");
    assert.match(content, /<title>[^<]*L1 N37/);
    assert.ok(content.includes("Top activating examples"));
  });
});
