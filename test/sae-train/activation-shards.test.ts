/**
 * Sharded activation harvesting and training from the shards: the shards in order are the one-process
 * harvest (against harvestActivations run directly), the stream visits every row once per pass a window of
 * chunks at a time, the SAE trained on 3 shards is the one trained on 1 bit for bit, missing / unfinished /
 * foreign shards are refused by name, and a shard re-run touches only its own directory.
 */
import assert from "node:assert/strict";
import { cpSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { jsonlSource } from "../../src/corpus/sources.ts";
import { HookedTransformer } from "../../src/model/hooked-transformer.ts";
import {
  type HarvestSettings,
  harvestShard,
  readHarvestManifest,
} from "../../src/sae-train/activation-shards.ts";
import { harvestActivations, tokenSequences } from "../../src/sae-train/harvest.ts";
import { openActivationShards, readHeldOut, shardStreamSource } from "../../src/sae-train/shard-reader.ts";
import { trainSaeFromShards } from "../../src/sae-train/train-from-shards.ts";
import { defaultTrainSettings } from "../../src/sae-train/trainer.ts";
import { SafetensorsReader } from "../../src/weights/safetensors.ts";
import { REPO_ROOT } from "../helpers/fixture.ts";

const dir = mkdtempSync(join(tmpdir(), "cs-act-shards-"));
const corpusPath = join(dir, "stories.jsonl");
writeFileSync(
  corpusPath,
  `${readFileSync(join(REPO_ROOT, "models/stories260k-saes/stories-140k-seed0.jsonl"), "utf8").split("\n").slice(0, 60).join("\n")}\n`,
);
const corpus = jsonlSource(corpusPath);
const model = await HookedTransformer.fromPretrained(join(REPO_ROOT, "models/stories260k"));
const SETTINGS: HarvestSettings = {
  model: "stories260k",
  hook: "blocks.2.hook_resid_pre",
  corpus: corpus.name,
  context: 48,
  tokens: 2500,
  heldOutTokens: 300,
  chunkSequences: 4,
};
const one = join(dir, "one");
const three = [0, 1, 2].map((i) => join(dir, "three", String(i)));

before(async () => {
  await harvestShard({
    model,
    corpus,
    settings: SETTINGS,
    shard: { index: 0, count: 1 },
    out: join(one, "0"),
  });
  // Out of order, as an engine may run them.
  for (const i of [2, 0, 1])
    await harvestShard({ model, corpus, settings: SETTINGS, shard: { index: i, count: 3 }, out: three[i] });
});
after(() => {
  model.dispose();
  rmSync(dir, { recursive: true, force: true });
});

/** The rows of a split, read chunk file by chunk file in the manifests' order. */
function rowsOf(dirs: string[], split: "train" | "heldout"): Float32Array[] {
  const out: Float32Array[] = [];
  for (const d of dirs)
    for (const c of readHarvestManifest(d).chunks.filter((c) => c.split === split)) {
      const r = SafetensorsReader.open(join(d, c.file));
      out.push(r.readFloat32("activations"));
      r.close();
    }
  return out;
}

function concat(parts: Float32Array[]): Float32Array {
  const out = new Float32Array(parts.reduce((a, p) => a + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

describe("sae harvest --shard: the shards in order are the one-process harvest", () => {
  test("3 shards' rows = harvestActivations over the same texts, bit for bit; held-out likewise", () => {
    // Independent of the planner: every tenth text held out, the training stream cut at 2500 rows.
    const seqs = [...tokenSequences(model, corpus.documents(), SETTINGS.context)];
    const train = seqs.filter((_, i) => i % 10 !== 9);
    const heldOut = seqs.filter((_, i) => i % 10 === 9);
    const [x] = harvestActivations(model, train, { hooks: [SETTINGS.hook], maxTokens: 2500, batchSize: 4 });
    const [h] = harvestActivations(model, heldOut, { hooks: [SETTINGS.hook], maxTokens: 300, batchSize: 4 });
    assert.equal(x.rows, 2500);
    assert.deepEqual(concat(rowsOf(three, "train")), x.data);
    assert.deepEqual(concat(rowsOf([join(one, "0")], "train")), x.data);
    assert.deepEqual(concat(rowsOf(three, "heldout")), h.data);
    // Every shard did a part (none empty), and they are contiguous.
    const counts = three.map((d) => readHarvestManifest(d).chunks.length);
    assert.ok(
      counts.every((c) => c > 0),
      `chunks per shard ${counts}`,
    );
  });
});

describe("shardStreamSource: a seeded stream, a window of chunks at a time", () => {
  test("each pass visits every row once; chunks come window by window; the order is the seed's", () => {
    const shards = openActivationShards(three);
    const all = concat(rowsOf(three, "train"));
    const width = shards.width;
    const key = (a: Float32Array, r: number) => a.subarray(r * width, (r + 1) * width).join(",");
    // Texts share openings ("Once upon a time"), so some rows repeat: a row names its chunk only when unique.
    const count = new Map<string, number>();
    for (let r = 0; r < shards.trainRows; r++) count.set(key(all, r), (count.get(key(all, r)) ?? 0) + 1);
    const chunkOfRow = new Map<string, number>();
    for (const [c, f] of shards.train.entries())
      for (let r = f.rowStart; r < f.rowStart + f.rows; r++)
        if (count.get(key(all, r)) === 1) chunkOfRow.set(key(all, r), c);
    assert.ok(chunkOfRow.size > shards.trainRows / 2, "most rows are unique");
    const src = shardStreamSource(shards, { seed: 5, bufferChunks: 2 });
    const passes = [0, 1].map((p) => src.batch(p, shards.trainRows).x);
    for (const pass of passes) {
      const seen = new Map<string, number>();
      for (let r = 0; r < shards.trainRows; r++) seen.set(key(pass, r), (seen.get(key(pass, r)) ?? 0) + 1);
      assert.deepEqual(seen, count, "every row once (as often as it occurs in the harvest)");
      // Windows of 2 chunks: sorted by first appearance, pairs of chunks occupy disjoint stretches.
      const first = new Map<number, number>();
      const last = new Map<number, number>();
      for (let r = 0; r < shards.trainRows; r++) {
        const c = chunkOfRow.get(key(pass, r));
        if (c === undefined) continue;
        if (!first.has(c)) first.set(c, r);
        last.set(c, r);
      }
      assert.equal(first.size, shards.train.length, "every chunk has a unique row");
      const order = [...first.keys()].sort((a, b) => first.get(a)! - first.get(b)!);
      let end = -1;
      for (let w = 0; w < order.length; w += 2) {
        const pair = order.slice(w, w + 2);
        const start = Math.min(...pair.map((c) => first.get(c)!));
        assert.ok(start > end, `window ${w / 2} starts after the previous one ends`);
        end = Math.max(...pair.map((c) => last.get(c)!));
      }
    }
    assert.notDeepEqual(passes[0], passes[1], "each pass is a fresh shuffle");
    // Another source with the same seed gives the same stream, batch by batch.
    const again = shardStreamSource(openActivationShards([join(one, "0")]), { seed: 5, bufferChunks: 2 });
    const b = 97;
    for (const step of [0, 3, 40]) assert.deepEqual(again.batch(step, b).x, src.batch(step, b).x);
  });

  test("the target mean is the rows' mean (float64)", () => {
    const shards = openActivationShards(three);
    const all = concat(rowsOf(three, "train"));
    const mean = shardStreamSource(shards, { seed: 0, bufferChunks: 3 }).targetMean();
    for (let i = 0; i < shards.width; i++) {
      let s = 0;
      for (let r = 0; r < shards.trainRows; r++) s += all[r * shards.width + i];
      assert.ok(Math.abs(mean[i] - s / shards.trainRows) < 1e-6);
    }
    assert.deepEqual(readHeldOut(shards).data, concat(rowsOf(three, "heldout")));
  });
});

describe("sae train --activations: trained from n shards = trained from one", () => {
  const settings = (seed: number) =>
    defaultTrainSettings({ architecture: "topk", dSae: 64, k: 4, tokens: 3200, batchSize: 128, seed });
  const train = (activations: string[], out: string, seed = 3) =>
    trainSaeFromShards({
      activations,
      kernels: model.kernels,
      bufferChunks: 3,
      settings: settings(seed),
      out,
      checkpointEvery: 10,
    });

  test("3 shards (given in any order) give the SAE 1 shard gives, bit for bit", async () => {
    const r1 = await train([one], join(dir, "sae-1"));
    const r3 = await train([three[2], three[0], three[1]], join(dir, "sae-3"));
    assert.equal(r1.complete && r3.complete, true);
    assert.equal(r3.shards.length, 3);
    const w1 = readFileSync(join(dir, "sae-1", "sae_weights.safetensors"));
    assert.ok(w1.equals(readFileSync(join(dir, "sae-3", "sae_weights.safetensors"))));
    assert.deepEqual(r1.heldOut, r3.heldOut);
    // The comparison can fail: another seed trains another SAE.
    await train([one], join(dir, "sae-seed4"), 4);
    assert.ok(!w1.equals(readFileSync(join(dir, "sae-seed4", "sae_weights.safetensors"))));
    const cfg = JSON.parse(readFileSync(join(dir, "sae-3", "cfg.json"), "utf8"));
    assert.equal(cfg.metadata.hook_name, SETTINGS.hook);
    assert.equal(cfg.metadata.model_name, SETTINGS.model);
    assert.equal(cfg.metadata.context_size, SETTINGS.context);
  });
});

describe("refused shards are named", () => {
  test("a missing shard, a shard given twice, an unfinished one, one from another model", async () => {
    assert.throws(() => openActivationShards([three[0], three[2]]), /Missing activation shard 1\/3/);
    assert.throws(() => openActivationShards([...three, three[1]]), /Shard 1\/3 is given twice/);
    assert.throws(() => openActivationShards([three[0], join(one, "0")]), /another split/);
    const unfinished = join(dir, "unfinished");
    cpSync(three[1], unfinished, { recursive: true });
    const m = JSON.parse(readFileSync(join(unfinished, "harvest.json"), "utf8"));
    writeFileSync(join(unfinished, "harvest.json"), JSON.stringify({ ...m, complete: false }));
    assert.throws(
      () => openActivationShards([three[0], unfinished, three[2]]),
      (e: Error) => /Unfinished activation shard: 1\/3/.test(e.message) && e.message.includes(unfinished),
    );
    // Shard 1 harvested from another model (a copy of the checkpoint under another name).
    const otherDir = join(dir, "other-model");
    cpSync(join(REPO_ROOT, "models/stories260k"), otherDir, { recursive: true });
    const other = await HookedTransformer.fromPretrained(otherDir);
    const foreign = join(dir, "foreign-1");
    try {
      await harvestShard({
        model: other,
        corpus,
        settings: { ...SETTINGS, model: otherDir },
        shard: { index: 1, count: 3 },
        out: foreign,
      });
    } finally {
      other.dispose();
    }
    assert.throws(
      () => openActivationShards([three[0], foreign, three[2]]),
      (e: Error) =>
        e.message.includes(`Shard 1/3 in ${foreign} is from another harvest`) && /model: /.test(e.message),
    );
  });
});

describe("a shard re-run replaces only its own output", () => {
  test("shard 1 killed after a chunk resumes into the same files; shards 0 and 2 are untouched", async () => {
    const files = (d: string) => readdirSync(d).sort();
    const stamp = (d: string) =>
      files(d).map((f) => [f, statSync(join(d, f)).mtimeMs, statSync(join(d, f)).ino]);
    const before = [three[0], three[2]].map(stamp);
    const contents = new Map(files(three[1]).map((f) => [f, readFileSync(join(three[1], f))]));
    // As a kill after its first chunk leaves it: the manifest lists one chunk, the rest are gone.
    const m = readHarvestManifest(three[1]);
    for (const c of m.chunks.slice(1)) rmSync(join(three[1], c.file));
    writeFileSync(
      join(three[1], "harvest.json"),
      JSON.stringify({ ...m, chunks: m.chunks.slice(0, 1), complete: false }),
    );
    const firstChunk = statSync(join(three[1], m.chunks[0].file)).mtimeMs;
    const r = await harvestShard({
      model,
      corpus,
      settings: SETTINGS,
      shard: { index: 1, count: 3 },
      out: three[1],
      resume: true,
    });
    assert.equal(r.complete, true);
    assert.equal(r.chunksWritten, m.chunks.length - 1, "only the missing chunks are harvested");
    assert.equal(statSync(join(three[1], m.chunks[0].file)).mtimeMs, firstChunk, "the finished chunk kept");
    for (const [f, bytes] of contents)
      if (f !== "harvest.json") assert.ok(readFileSync(join(three[1], f)).equals(bytes), f);
    assert.deepEqual([three[0], three[2]].map(stamp), before);
    // A finished shard run again does nothing.
    const again = await harvestShard({
      model,
      corpus,
      settings: SETTINGS,
      shard: { index: 1, count: 3 },
      out: three[1],
      resume: true,
    });
    assert.equal(again.chunksWritten, 0);
    // Without --resume, or with other settings, an existing shard is refused (nothing touched).
    await assert.rejects(
      harvestShard({ model, corpus, settings: SETTINGS, shard: { index: 1, count: 3 }, out: three[1] }),
      /already holds an activation harvest/,
    );
    await assert.rejects(
      harvestShard({
        model,
        corpus,
        settings: { ...SETTINGS, context: 32 },
        shard: { index: 1, count: 3 },
        out: three[1],
        resume: true,
      }),
      /other settings \(context: 48 vs 32\)/,
    );
    assert.doesNotThrow(() => openActivationShards(three));
  });
});

describe("a stopped harvest", () => {
  test("stops after a chunk with its manifest naming what is written; --resume finishes it into the same bits", async () => {
    const out = join(dir, "stopped");
    const stop = new AbortController();
    const r = await harvestShard({
      model,
      corpus,
      settings: SETTINGS,
      shard: { index: 0, count: 1 },
      out,
      signal: stop.signal,
      onChunk: () => stop.abort(),
    });
    assert.equal(r.complete, false);
    const m = readHarvestManifest(out);
    assert.equal(m.complete, false);
    assert.equal(m.chunks.length, 1);
    assert.deepEqual(readdirSync(out).sort(), ["harvest.json", m.chunks[0].file]);
    assert.throws(() => openActivationShards([out]), /Unfinished activation shard: 0\/1/);
    const done = await harvestShard({
      model,
      corpus,
      settings: SETTINGS,
      shard: { index: 0, count: 1 },
      out,
      resume: true,
    });
    assert.equal(done.complete, true);
    assert.deepEqual(concat(rowsOf([out], "train")), concat(rowsOf([join(one, "0")], "train")));
  });
});
