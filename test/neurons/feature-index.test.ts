/**
 * The feature index: the neuron index's machinery over an SAE's features. Checked against a brute-force
 * scan whose feature activations are computed independently in float64 from the SAE's weights, and for
 * shards, merge and resume byte for byte against a single run.
 */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { corpusContexts } from "../../src/corpus/contexts.ts";
import { type DocumentSource, nlpCorpusSource } from "../../src/corpus/sources.ts";
import { HookedTransformer } from "../../src/model/hooked-transformer.ts";
import { sampleScore } from "../../src/neurons/band-samples.ts";
import { buildIndex } from "../../src/neurons/build-index.ts";
import { readIndexState } from "../../src/neurons/index-store.ts";
import { mergeIndexes } from "../../src/neurons/merge-indexes.ts";
import { Sae, type SaeWeights } from "../../src/sae/sae.ts";
import { referenceKernels } from "../../src/tensor/reference-kernels.ts";
import { loadCheckpoint } from "../../src/weights/checkpoint.ts";
import { FIXTURE_DIR } from "../helpers/fixture.ts";
import { storeFiles } from "../helpers/index-files.ts";
import { randomSaeWeights, saeConfigFor } from "../helpers/random-sae.ts";

const CONTEXT_LEN = 16;
const MAX_TOKENS = 12 * CONTEXT_LEN - 5;
const TOP_K = 4;
const BAND_SAMPLES = 3;
const HOOK = "blocks.1.hook_resid_pre";
const D_SAE = 24;
const HISTOGRAM = { lo: 0, hi: 4, bins: 8 };

let model: HookedTransformer;
let source: DocumentSource;
let sae: Sae;
let weights: SaeWeights;
let workDir: string;
const settings = () => ({
  modelName: "tiny-gpt2",
  sae: { sae, path: "random-sae" },
  topK: TOP_K,
  bandSamples: BAND_SAMPLES,
  histogram: HISTOGRAM,
  contextLen: CONTEXT_LEN,
  maxTokens: MAX_TOKENS,
});

before(() => {
  model = HookedTransformer.fromCheckpoint(loadCheckpoint(FIXTURE_DIR), { backend: "reference" });
  source = nlpCorpusSource();
  const dIn = model.cfg.dModel;
  weights = randomSaeWeights({ architecture: "standard", dIn, dSae: D_SAE, seed: 7, encScale: 0.3 });
  sae = new Sae({
    cfg: saeConfigFor({ architecture: "standard", dIn, dSae: D_SAE, hookName: HOOK }),
    weights,
    kernels: referenceKernels,
  });
  workDir = mkdtempSync(join(tmpdir(), "circuitscope-features-"));
});
after(() => rmSync(workDir, { recursive: true, force: true }));

/** relu((x − b_dec) W_enc + b_enc) in float64, straight from the weights: [pos, d_sae]. */
function featuresF64(x: Float32Array, rows: number): Float64Array {
  const { W_enc, b_enc, b_dec } = weights;
  const dIn = b_dec.length;
  const out = new Float64Array(rows * D_SAE);
  for (let r = 0; r < rows; r++) {
    for (let f = 0; f < D_SAE; f++) {
      let pre = b_enc![f];
      for (let d = 0; d < dIn; d++) pre += (x[r * dIn + d] - b_dec[d]) * W_enc[d * D_SAE + f];
      out[r * D_SAE + f] = Math.max(0, pre);
    }
  }
  return out;
}

interface Token {
  contextId: number;
  position: number;
  value: number;
}

describe("feature index", () => {
  test("top examples, density, histogram and band samples match a float64 scan of the corpus", async () => {
    const out = join(workDir, "single");
    const { manifest } = await buildIndex(model, source, { ...settings(), outDir: out, batchSize: 3 });
    assert.ok(manifest?.progress.complete);
    assert.deepEqual(manifest.settings.sae, { path: "random-sae", hook: HOOK, dSae: D_SAE });
    const { stats, samples, contexts } = readIndexState(out);
    assert.ok(samples);

    const all: Token[][] = Array.from({ length: D_SAE }, () => []);
    let tokens = 0;
    for (const ctx of corpusContexts(source, { contextLen: CONTEXT_LEN, maxTokens: MAX_TOKENS })) {
      const { cache } = model.runWithCache([ctx.tokens], { namesFilter: [HOOK], logits: "none" });
      const acts = featuresF64(cache.get(HOOK).data, ctx.tokens.length);
      for (let p = 0; p < ctx.tokens.length; p++) {
        for (let f = 0; f < D_SAE; f++) {
          all[f].push({ contextId: ctx.id, position: p, value: acts[p * D_SAE + f] });
        }
      }
      tokens += ctx.tokens.length;
    }
    assert.equal(stats.tokens, tokens);
    const { lo, hi, bins } = HISTOGRAM;
    let sampledBins = 0;
    for (let f = 0; f < D_SAE; f++) {
      const expected = [...all[f]]
        .sort((a, b) => b.value - a.value || a.contextId - b.contextId || a.position - b.position)
        .slice(0, TOP_K);
      const got = stats.top(f);
      assert.deepEqual(
        got.map((e) => [e.contextId, e.position]),
        expected.map((e) => [e.contextId, e.position]),
        `feature ${f}`,
      );
      for (const [i, e] of got.entries()) assert.ok(Math.abs(e.value - expected[i].value) < 1e-4);
      // Density: tokens where the feature is non-zero (values within float32 noise of 0 are not compared).
      const near = all[f].filter((t) => Math.abs(t.value) < 1e-5 && t.value > 0).length;
      const firing = all[f].filter((t) => t.value > 0).length;
      assert.ok(Math.abs(stats.positive[f] - firing) <= near, `density of feature ${f}`);
      const binOf = (v: number) =>
        v < lo ? 0 : v >= hi ? bins + 1 : Math.floor(((v - lo) / (hi - lo)) * bins) + 1;
      // Histogram: every bin's count, up to values within float32 noise of a bin edge.
      const row = stats.histogram.subarray(f * stats.binsTotal, (f + 1) * stats.binsTotal);
      const width = (hi - lo) / bins;
      // (An exact 0, relu's output for most tokens, is no edge case: it is bin 1 in both.)
      const nearEdge = all[f].filter((t) => {
        if (t.value === 0) return false;
        const u = (t.value - lo) / width;
        return Math.abs(u - Math.round(u)) * width < 1e-5;
      }).length;
      for (let bin = 0; bin < stats.binsTotal; bin++) {
        const want = all[f].filter((t) => binOf(t.value) === bin).length;
        assert.ok(Math.abs(row[bin] - want) <= nearEdge, `feature ${f} bin ${bin}: ${row[bin]} vs ${want}`);
      }
      // Band samples: in each bin, the tokens with the highest score among those whose activation is there.
      for (let bin = 1; bin <= bins + 1; bin++) {
        const inBin = all[f].filter((t) => t.value > 1e-4 && binOf(t.value) === bin);
        const want = inBin
          .map((t) => ({ ...t, score: sampleScore(f, t.contextId, t.position) }))
          .sort((a, b) => b.score - a.score || a.contextId - b.contextId || a.position - b.position)
          .slice(0, BAND_SAMPLES)
          .map((t) => [t.contextId, t.position]);
        const kept: number[][] = samples.top(f * stats.binsTotal + bin).map((e) => [e.contextId, e.position]);
        assert.deepEqual(kept, want, `feature ${f}, bin ${bin}`);
        if (want.length > 0) sampledBins++;
      }
    }
    assert.ok(sampledBins > D_SAE, `band samples were exercised (${sampledBins} non-empty bins)`);
    // Sampled examples' contexts are stored too.
    for (const e of samples.top(0 * stats.binsTotal + 1)) assert.ok(contexts.has(e.contextId));
  });

  test("shards merge into the single run's store byte for byte; a resumed run ends the same", async () => {
    const single = join(workDir, "single-b2");
    await buildIndex(model, source, { ...settings(), outDir: single, batchSize: 2 });
    const shardDirs = [0, 1].map((i) => join(workDir, `shard-${i}`));
    for (const [i, dir] of shardDirs.entries()) {
      await buildIndex(model, source, {
        ...settings(),
        outDir: dir,
        batchSize: 2,
        shard: { index: i, count: 2 },
      });
    }
    const merged = join(workDir, "merged");
    mergeIndexes([shardDirs[1], shardDirs[0]], merged);
    assert.deepEqual(storeFiles(merged), storeFiles(single));

    const resumed = join(workDir, "resumed");
    const first = await buildIndex(model, source, {
      ...settings(),
      outDir: resumed,
      batchSize: 2,
      checkpointEvery: 2,
      maxBatches: 3,
    });
    assert.equal(first.manifest?.progress.complete, false);
    await buildIndex(model, source, { ...settings(), outDir: resumed, batchSize: 2, resume: true });
    assert.deepEqual(storeFiles(resumed), storeFiles(single));
  });

  test("a feature index refuses --layers, and resuming with another SAE path names the difference", async () => {
    await assert.rejects(
      buildIndex(model, source, { ...settings(), layers: [0], outDir: join(workDir, "x") }),
      /either --sae or --layers/,
    );
    const dir = join(workDir, "other");
    await buildIndex(model, source, { ...settings(), outDir: dir, maxBatches: 1 });
    await assert.rejects(
      buildIndex(model, source, {
        ...settings(),
        sae: { sae, path: "another-sae" },
        outDir: dir,
        resume: true,
      }),
      /sae: .*random-sae.*another-sae/,
    );
  });
});
