/**
 * The transcoder feature index (`index --transcoders`): every layer's transcoder on its feature input hook,
 * one block per layer. Checked against a float64 scan computed here from the cached hook and the weights, and
 * the feature page (`feature --transcoders`) read back from it.
 */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { corpusContexts } from "../../src/corpus/contexts.ts";
import { type DocumentSource, nlpCorpusSource } from "../../src/corpus/sources.ts";
import type { TranscoderSet } from "../../src/graphs/transcoder-set.ts";
import { HookedTransformer } from "../../src/model/hooked-transformer.ts";
import { buildIndex } from "../../src/neurons/build-index.ts";
import { transcoderFeaturePageData } from "../../src/neurons/feature-page.ts";
import { NeuronIndex } from "../../src/neurons/neuron-index.ts";
import { loadCheckpoint } from "../../src/weights/checkpoint.ts";
import { FIXTURE_DIR } from "../helpers/fixture.ts";
import { randomTranscoderSet } from "../helpers/random-transcoder.ts";

const CONTEXT_LEN = 16;
const MAX_TOKENS = 10 * CONTEXT_LEN - 3;
const TOP_K = 4;
const D_TC = 12;

let model: HookedTransformer;
let source: DocumentSource;
let set: TranscoderSet;
let workDir: string;

before(() => {
  model = HookedTransformer.fromCheckpoint(loadCheckpoint(FIXTURE_DIR), { backend: "reference" });
  source = nlpCorpusSource();
  set = randomTranscoderSet({
    layers: model.cfg.nLayers,
    dModel: model.cfg.dModel,
    dTc: D_TC,
    seed: 3,
    jump: (l) => l % 2 === 0,
    skip: () => false,
  });
  workDir = mkdtempSync(join(tmpdir(), "circuitscope-tc-index-"));
});
after(() => rmSync(workDir, { recursive: true, force: true }));

interface Token {
  contextId: number;
  position: number;
  value: number;
}

/** Per layer and feature, every token's activation: W_enc[f]·x + b_enc[f] above the threshold (or 0), float64. */
function scan(): { tokens: number; all: Token[][][] } {
  const L = set.transcoders.length;
  const D = model.cfg.dModel;
  const all: Token[][][] = set.transcoders.map(() => Array.from({ length: D_TC }, () => []));
  let tokens = 0;
  for (const ctx of corpusContexts(source, { contextLen: CONTEXT_LEN, maxTokens: MAX_TOKENS })) {
    const names = set.transcoders.map((tc) => `blocks.${tc.layer}.ln2.hook_normalized`);
    const { cache } = model.runWithCache([ctx.tokens], { namesFilter: names, logits: "none" });
    for (let l = 0; l < L; l++) {
      const tc = set.transcoders[l];
      const x = cache.get(names[l]).data;
      for (let p = 0; p < ctx.tokens.length; p++) {
        for (let f = 0; f < D_TC; f++) {
          let pre = tc.bEnc[f];
          for (let d = 0; d < D; d++) pre += tc.wEnc[f * D + d] * x[p * D + d];
          const value = pre > (tc.threshold ? tc.threshold[f] : 0) ? pre : 0;
          all[l][f].push({ contextId: ctx.id, position: p, value });
        }
      }
    }
    tokens += ctx.tokens.length;
  }
  return { tokens, all };
}

test("each layer's features: top examples and density match a float64 scan; the page reads them back", async () => {
  const out = join(workDir, "index");
  const { manifest } = await buildIndex(model, source, {
    modelName: "tiny-gpt2",
    transcoders: { set, path: "random-set" },
    topK: TOP_K,
    histogram: { lo: 0, hi: 4, bins: 8 },
    contextLen: CONTEXT_LEN,
    maxTokens: MAX_TOKENS,
    outDir: out,
    batchSize: 3,
  });
  assert.ok(manifest?.progress.complete);
  assert.deepEqual(manifest.settings.transcoders, {
    path: "random-set",
    inputHook: "ln2.hook_normalized",
    dTranscoder: D_TC,
  });
  assert.deepEqual(manifest.settings.layers, [...set.transcoders.keys()]);
  const index = NeuronIndex.open(out);
  const { tokens, all } = scan();
  let firingUnits = 0;
  for (const [l, features] of all.entries()) {
    for (const [f, acts] of features.entries()) {
      const summary = index.transcoderFeatureSummary(l, f);
      assert.equal(summary.tokens, tokens);
      const expected = [...acts]
        .sort((a, b) => b.value - a.value || a.contextId - b.contextId || a.position - b.position)
        .slice(0, TOP_K)
        .filter((e) => e.value > 0);
      const got = summary.examples.filter((e) => e.value > 0);
      assert.deepEqual(
        got.map((e) => [e.contextId, e.position]),
        expected.map((e) => [e.contextId, e.position]),
        `layer ${l} feature ${f}`,
      );
      got.forEach((e, i) => {
        assert.ok(Math.abs(e.value - expected[i].value) < 1e-4);
      });
      const firing = acts.filter((t) => t.value > 0).length;
      assert.ok(Math.abs(summary.density * tokens - firing) <= 1, `density of L${l} F${f}`);
      if (firing > 0) firingUnits++;
    }
  }
  assert.ok(firingUnits > D_TC, `${firingUnits} features fire: the comparison is not vacuous`);

  // The page of the strongest feature of the last layer: its examples, values recomputed, are the index's.
  const L = set.transcoders.length - 1;
  const f = all[L]
    .map((a) => Math.max(...a.map((t) => t.value)))
    .reduce((b, v, i, m) => (v > m[b] ? i : b), 0);
  const page = transcoderFeaturePageData(model, set, L, f, { index, setName: "random-set" });
  assert.equal(page.transcoderLayer, L);
  assert.equal(page.hook, `blocks.${L}.ln2.hook_normalized`);
  const top = [...all[L][f]].sort((a, b) => b.value - a.value)[0];
  const first = page.index!.examples[0];
  assert.deepEqual([first.contextId, first.position], [top.contextId, top.position]);
  assert.ok(Math.abs(first.activations[first.position] - top.value) < 1e-4);
  assert.ok(page.logitEffect, "a transcoder writes the residual stream: its logit effect is computed");
});

test("an index of another layer's feature or another dictionary is refused, naming it", async () => {
  const out = join(workDir, "small");
  await buildIndex(model, source, {
    modelName: "tiny-gpt2",
    transcoders: { set, path: "random-set" },
    contextLen: CONTEXT_LEN,
    maxTokens: 2 * CONTEXT_LEN,
    outDir: out,
  });
  const index = NeuronIndex.open(out);
  assert.throws(() => index.transcoderFeatureSummary(0, D_TC), /Feature 12 does not exist/);
  assert.throws(() => index.transcoderFeatureSummary(99, 0), /has no layer 99/);
  assert.throws(() => index.summary(0, 0), /transcoder feature index/);
  const wider = randomTranscoderSet({
    layers: model.cfg.nLayers,
    dModel: model.cfg.dModel,
    dTc: D_TC + 1,
    seed: 4,
    jump: () => false,
    skip: () => false,
  });
  assert.throws(
    () => transcoderFeaturePageData(model, wider, 0, 0, { index }),
    /not a feature index of this transcoder set/,
  );
  await assert.rejects(
    buildIndex(model, source, {
      modelName: "m",
      transcoders: { set, path: "p" },
      layers: [0],
      outDir: join(workDir, "x"),
    }),
    /--transcoders alone/,
  );
});
