import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { corpusContexts } from "../../src/corpus/contexts.ts";
import { type DocumentSource, nlpCorpusSource } from "../../src/corpus/sources.ts";
import { HookedTransformer } from "../../src/model/hooked-transformer.ts";
import { buildIndex } from "../../src/neurons/build-index.ts";
import { readIndexState } from "../../src/neurons/index-store.ts";
import { mergeIndexes, summarizeShards } from "../../src/neurons/merge-indexes.ts";
import { runMlpPost } from "../../src/neurons/mlp-activations.ts";
import type { Example } from "../../src/neurons/neuron-stats.ts";
import { loadCheckpoint } from "../../src/weights/checkpoint.ts";
import { FIXTURE_DIR } from "../helpers/fixture.ts";
import { storeFiles } from "../helpers/index-files.ts";

// A small slice of a real corpus: 24 contexts of 32 tokens (the last one shorter, so padding is exercised).
const CONTEXT_LEN = 32;
const MAX_TOKENS = 24 * CONTEXT_LEN - 7;
const TOP_K = 5;
const LAYERS = [0, 2];
const settings = {
  modelName: "tiny-gpt2",
  layers: LAYERS,
  topK: TOP_K,
  contextLen: CONTEXT_LEN,
  maxTokens: MAX_TOKENS,
};

let model: HookedTransformer;
let source: DocumentSource;
let workDir: string;

before(() => {
  model = HookedTransformer.fromCheckpoint(loadCheckpoint(FIXTURE_DIR), { backend: "reference" });
  source = nlpCorpusSource();
  workDir = mkdtempSync(join(tmpdir(), "circuitscope-neurons-"));
});
after(() => rmSync(workDir, { recursive: true, force: true }));

/** Every data file and the manifest of an index directory, by name. */

describe("neuron index", () => {
  test("top-k, positive counts and histogram match a brute-force scan, one context at a time", async () => {
    const out = join(workDir, "single");
    const { manifest } = await buildIndex(model, source, { ...settings, outDir: out, batchSize: 5 });
    assert.ok(manifest?.progress.complete);
    const { stats, contexts } = readIndexState(out);
    const dMlp = model.cfg.dMlp;

    const all: Example[][] = Array.from({ length: LAYERS.length * dMlp }, () => []);
    let tokens = 0;
    const ctxTokens = new Map<number, number[]>();
    for (const ctx of corpusContexts(source, { contextLen: CONTEXT_LEN, maxTokens: MAX_TOKENS })) {
      ctxTokens.set(ctx.id, ctx.tokens);
      const run = runMlpPost(model, [ctx.tokens], LAYERS);
      LAYERS.forEach((_, slot) => {
        for (let p = 0; p < ctx.tokens.length; p++) {
          for (let n = 0; n < dMlp; n++) {
            all[slot * dMlp + n].push({
              contextId: ctx.id,
              position: p,
              value: run.actsBPM[slot][p * dMlp + n],
            });
          }
        }
      });
      tokens += ctx.tokens.length;
    }
    assert.ok(tokens > 700 && tokens <= MAX_TOKENS, `corpus slice has ${tokens} tokens`);
    assert.equal(stats.tokens, tokens);
    assert.equal(manifest.progress.tokens, tokens);

    for (let g = 0; g < all.length; g++) {
      // Best first: larger value, then (on a tie) the earlier context, then the earlier position.
      const expected = [...all[g]]
        .sort((a, b) => b.value - a.value || a.contextId - b.contextId || a.position - b.position)
        .slice(0, TOP_K);
      const got = stats.top(g);
      assert.deepEqual(
        got.map((e) => [e.contextId, e.position]),
        expected.map((e) => [e.contextId, e.position]),
        `neuron ${g}`,
      );
      for (const [i, e] of got.entries()) {
        assert.ok(Math.abs(e.value - expected[i].value) < 1e-5, `neuron ${g} example ${i}`);
      }
      assert.equal(
        stats.positive[g],
        all[g].filter((e) => e.value > 0).length,
        `positive count of neuron ${g}`,
      );
      const row = stats.histogram.subarray(g * stats.binsTotal, (g + 1) * stats.binsTotal);
      assert.equal(
        row.reduce((a, x) => a + x, 0),
        tokens,
        `histogram of neuron ${g} sums to the token count`,
      );
      // Bin of the top value holds at least one count.
      const { lo, hi, bins } = stats.hist;
      const top = expected[0].value;
      const bin = top >= hi ? bins + 1 : Math.floor(((top - lo) / (hi - lo)) * bins) + 1;
      assert.ok(row[bin] > 0, `neuron ${g}: top value ${top} is in bin ${bin}`);
    }
    // The store keeps exactly the contexts its examples show, with their tokens.
    const referenced = stats.referencedContexts();
    assert.deepEqual(
      [...contexts.keys()].sort((a, b) => a - b),
      [...referenced].sort((a, b) => a - b),
    );
    for (const [id, toks] of contexts) assert.deepEqual([...toks], ctxTokens.get(id));
  });

  test("merging shard indexes gives the single run's store byte for byte", async () => {
    const single = join(workDir, "single-b4");
    await buildIndex(model, source, { ...settings, outDir: single, batchSize: 4 });
    const shardDirs = [0, 1, 2].map((i) => join(workDir, `shard-${i}`));
    for (const [i, dir] of shardDirs.entries()) {
      const { manifest } = await buildIndex(model, source, {
        ...settings,
        outDir: dir,
        batchSize: 4,
        shard: { index: i, count: 3 },
      });
      assert.ok(manifest && manifest.progress.contexts < 24 && manifest.progress.contexts > 0);
    }
    // Merge in a scrambled order: the result must not depend on it.
    const merged = join(workDir, "merged");
    mergeIndexes([shardDirs[2], shardDirs[0], shardDirs[1]], merged);
    assert.deepEqual(storeFiles(merged), storeFiles(single));
    // What the merge reports per shard comes from each shard's own manifest.
    const summaries = summarizeShards(shardDirs);
    assert.deepEqual(
      summaries.map((s) => [s.shard.index, s.tokens]),
      shardDirs.map((d, i) => [i, readIndexState(d).manifest.progress.tokens]),
    );
    assert.equal(
      summaries.reduce((a, s) => a + s.tokens, 0),
      readIndexState(single).manifest.progress.tokens,
    );
    for (const s of summaries) assert.ok(s.seconds !== null && s.seconds > 0 && s.tokensPerSecond! > 0);
    assert.throws(
      () => mergeIndexes(shardDirs.slice(0, 2), join(workDir, "partial")),
      /Missing shard\(s\) 2\/3/,
    );
  });

  test("an interrupted index resumes to exactly the uninterrupted result", async () => {
    const reference = join(workDir, "reference");
    await buildIndex(model, source, { ...settings, outDir: reference, batchSize: 3 });

    // Crash-like stop (no checkpoint at the stop) after 5 batches, checkpoints every 6 contexts.
    const crashed = join(workDir, "crashed");
    const common = { ...settings, outDir: crashed, batchSize: 3, checkpointEvery: 6 };
    const first = await buildIndex(model, source, { ...common, maxBatches: 5, checkpointOnStop: false });
    assert.equal(first.manifest?.progress.complete, false);
    assert.equal(first.manifest?.progress.contexts, 12, "last checkpoint after batch 4 (12 contexts)");
    await assert.rejects(buildIndex(model, source, common), /--resume/);
    // Graceful stop via an abort signal, then resume to the end.
    const controller = new AbortController();
    controller.abort();
    const second = await buildIndex(model, source, { ...common, resume: true, signal: controller.signal });
    assert.equal(second.manifest?.progress.contexts, 15);
    const done = await buildIndex(model, source, { ...common, resume: true });
    assert.equal(done.manifest?.progress.complete, true);
    assert.deepEqual(storeFiles(crashed), storeFiles(reference));
  });
});
