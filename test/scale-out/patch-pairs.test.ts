/**
 * Patching over a pairs file in shards: the merge of 3 shards (any order) is the one-process result bit for
 * bit, and agrees with one patching sweep over every pair at once (to float32 rounding: batches of other
 * sizes round differently); missing, doubled and foreign shards are refused by name; `slurm patch` writes
 * the array job and its patch-merge.
 */
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import { HookedTransformer } from "../../src/model/hooked-transformer.ts";
import { activationPatching } from "../../src/patching/activation-patching.ts";
import {
  combinePairShards,
  type PairShardData,
  type PairShardSettings,
  type PatchPair,
  patchPairShard,
  shardPairs,
} from "../../src/patching/pair-shards.ts";
import { fullJson } from "../../src/patching/result-format.ts";
import { targetFromName } from "../../src/patching/targets.ts";
import { runCli } from "../helpers/cli.ts";
import { REPO_ROOT } from "../helpers/fixture.ts";

const model = await HookedTransformer.fromPretrained(join(REPO_ROOT, "models/stories260k"));
const dir = mkdtempSync(join(tmpdir(), "cs-patch-pairs-"));
after(() => {
  model.dispose();
  rmSync(dir, { recursive: true, force: true });
});

const PLACES = ["park", "shop", "lake", "house", "garden", "school"];
const TIMES = ["One day,", "Then,", "At night,"];
const PAIRS: PatchPair[] = Array.from({ length: 11 }, (_, i) => ({
  clean: `Then Lily went to the ${PLACES[i % 6]}. ${TIMES[i % 3]}`,
  corrupted: `Then Tim went to the ${PLACES[i % 6]}. ${TIMES[i % 3]}`,
  answer: " she",
  wrong: " he",
}));
const SETTINGS: PairShardSettings = {
  model: "stories260k",
  pairsFile: "pairs.jsonl",
  pairsSha256: "0".repeat(64),
  pairCount: PAIRS.length,
  target: "head_all",
  targetOptions: {},
  method: "exact",
  batchSize: 3,
  prependBos: true,
};
const target = targetFromName("head_all", {});

async function shard(index: number, count: number, settings = SETTINGS): Promise<PairShardData> {
  const d = await patchPairShard(model, { pairs: PAIRS, settings, target, shard: { index, count } });
  assert.ok(d);
  return d;
}

describe("patch --pairs in shards", () => {
  test("shards take whole batches, contiguous, every pair once", () => {
    for (const n of [1, 2, 3, 4, 5]) {
      const ranges = Array.from({ length: n }, (_, i) => shardPairs(11, 3, { index: i, count: n }));
      assert.equal(ranges[0].start, 0);
      assert.equal(ranges.at(-1)!.end, 11);
      for (let i = 1; i < n; i++) assert.equal(ranges[i].start, ranges[i - 1].end);
      for (const r of ranges) assert.equal(r.start % 3, 0);
    }
  });

  test("3 shards merged (any order) = one process, bit for bit; ≈ one sweep over every pair", async () => {
    const single = combinePairShards([{ where: "one", data: await shard(0, 1) }]);
    const parts = await Promise.all(
      [2, 0, 1].map(async (i) => ({ where: `s${i}`, data: await shard(i, 3) })),
    );
    const merged = combinePairShards(parts);
    assert.deepEqual(JSON.stringify(fullJson(merged)), JSON.stringify(fullJson(single)));
    // Independently: one sweep over all 11 pairs (a batch of 11, so float32 sums round differently).
    const all = await activationPatching(model, {
      clean: PAIRS.map((p) => p.clean),
      corrupted: PAIRS.map((p) => p.corrupted),
      answers: {
        answer: PAIRS.map((p) => model.toSingleToken(p.answer)),
        wrong: PAIRS.map((p) => model.toSingleToken(p.wrong)),
      },
      target,
    });
    assert.deepEqual(merged.shape, all.shape);
    assert.deepEqual(merged.labels, all.labels);
    assert.ok(Math.abs(merged.clean - all.clean) < 1e-4);
    assert.ok(Math.abs(merged.corrupted - all.corrupted) < 1e-4);
    for (let i = 0; i < all.values.length; i++)
      assert.ok(Math.abs(merged.values[i] - all.values[i]) < 1e-4, `cell ${i}`);
    // The batch metric is the mean over pairs of each pair's own (float64, file order).
    const n = PAIRS.length;
    const nSites = merged.raw.length;
    for (const s of [0, 17, nSites - 1]) {
      let sum = 0;
      for (let p = 0; p < n; p++) sum += merged.perPrompt.raw[p * nSites + s];
      assert.equal(merged.raw[s], sum / n);
    }
  });

  test("a missing shard, one given twice, one of another run are refused by name", async () => {
    const parts = await Promise.all(
      [0, 1, 2].map(async (i) => ({ where: `dir${i}`, data: await shard(i, 3) })),
    );
    assert.throws(
      () => combinePairShards([parts[0], parts[2]]),
      /Missing shard 1\/3: run patch --pairs … --shard 1\/3/,
    );
    assert.throws(() => combinePairShards([...parts, parts[1]]), /Shard 1\/3 is given twice: dir1 and dir1/);
    const other = { where: "other", data: await shard(1, 3, { ...SETTINGS, batchSize: 2 }) };
    assert.throws(
      () => combinePairShards([parts[0], other, parts[2]]),
      /Shard 1\/3 in other is from another run .*batchSize: 3 vs 2/,
    );
    const twoWay = { where: "half", data: await shard(1, 2) };
    assert.throws(() => combinePairShards([parts[0], twoWay]), /another split|another run/);
  });
});

describe("patch --pairs on the command line", () => {
  test("the single run's result.json equals patch-merge of its shards; flags it would ignore are refused", async () => {
    const file = join(dir, "pairs.jsonl");
    writeFileSync(file, `${PAIRS.map((p) => JSON.stringify({ ...p, group: "g" })).join("\n")}\n`);
    const common = [
      "patch",
      "--model",
      "stories260k",
      "--pairs",
      "pairs.jsonl",
      "--target",
      "head_all",
      "--batch-size",
      "4",
    ];
    // The pairs differ in token length ("At night," is longer): a per-position target is refused up front.
    const perPos = await runCli([...common.slice(0, 5), "--target", "resid_pre", "--out", "pos"], {}, dir);
    assert.notEqual(perPos.code, 0);
    assert.match(
      perPos.stderr,
      /--target resid_pre patches one position at a time, but the pairs of pairs\.jsonl differ in token length/,
    );
    const one = await runCli([...common, "--out", "one"], {}, dir);
    assert.equal(one.code, 0, one.stderr);
    for (const i of [0, 1]) {
      const r = await runCli([...common, "--shard", `${i}/2`, "--out", `s/${i}`], {}, dir);
      assert.equal(r.code, 0, r.stderr);
    }
    const missing = await runCli(["patch-merge", "s/1", "--out", "merged"], {}, dir);
    assert.notEqual(missing.code, 0);
    assert.match(missing.stderr, /Missing shard 0\/2/);
    const merged = await runCli(["patch-merge", "s/1", "s/0", "--out", "merged"], {}, dir);
    assert.equal(merged.code, 0, merged.stderr);
    assert.equal(
      readFileSync(join(dir, "merged", "result.json"), "utf8"),
      readFileSync(join(dir, "one", "result.json"), "utf8"),
    );
    const ignored = await runCli([...common, "--clean", "x", "--out", "x"], {}, dir);
    assert.notEqual(ignored.code, 0);
    assert.match(ignored.stderr, /--clean has no effect with --pairs/);
    const again = await runCli([...common, "--shard", "0/2", "--out", "s/0"], {}, dir);
    assert.notEqual(again.code, 0);
    assert.match(again.stderr, /already holds a patch shard: pass --resume/);
    const slurm = await runCli(["slurm", ...common, "--shards", "2", "--out", "work", "--json"], {}, dir);
    assert.equal(slurm.code, 0, slurm.stderr);
    const mergeScript = readFileSync(join(dir, "work", "merge.sbatch"), "utf8");
    assert.match(
      mergeScript,
      /patch-merge \S+\/work\/shards\/0 \S+\/work\/shards\/1 --out \S+\/work\/merged/,
    );
    assert.match(
      readFileSync(join(dir, "work", "shards.sbatch"), "utf8"),
      /--pairs pairs\.jsonl .*--shard auto\/2/,
    );
  });
});
