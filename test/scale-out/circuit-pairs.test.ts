/**
 * Circuit edge scores over a pairs file in shards: the merge of 3 shards (any order) is the one-process
 * result bit for bit, each edge's score is the float64 mean of the pairs' scores in file order, and it agrees
 * with the batched scores of one CircuitTask over every pair (to float32 rounding); missing, doubled and
 * foreign shards are refused by name; `slurm circuit` and `kubernetes circuit` write valid job files.
 */
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import { Job } from "kubernetes-models/batch/v1/Job";
import { parse } from "yaml";
import { CircuitTask } from "../../src/circuits/circuit-task.ts";
import {
  type CircuitShardData,
  type CircuitShardSettings,
  combineCircuitShards,
  scorePairShard,
  type TokenPair,
} from "../../src/circuits/pair-scores.ts";
import { HookedTransformer } from "../../src/model/hooked-transformer.ts";
import { runCli } from "../helpers/cli.ts";
import { REPO_ROOT } from "../helpers/fixture.ts";

const model = await HookedTransformer.fromPretrained(join(REPO_ROOT, "models/stories260k"));
const dir = mkdtempSync(join(tmpdir(), "cs-circuit-pairs-"));
after(() => {
  model.dispose();
  rmSync(dir, { recursive: true, force: true });
});

const PLACES = ["park", "shop", "lake", "house"];
const TIMES = ["One day,", "Then,", "At night,"];
const PAIRS = Array.from({ length: 7 }, (_, i) => ({
  clean: `Then Lily went to the ${PLACES[i % 4]}. ${TIMES[i % 3]}`,
  corrupted: `Then Tim went to the ${PLACES[i % 4]}. ${TIMES[i % 3]}`,
  answer: " she",
  wrong: " he",
}));
const TOKENS: TokenPair[] = PAIRS.map((p) => ({
  clean: model.toTokens(p.clean),
  corrupted: model.toTokens(p.corrupted),
  answer: model.toSingleToken(p.answer),
  wrong: model.toSingleToken(p.wrong),
}));
const SETTINGS: CircuitShardSettings = {
  model: "stories260k",
  pairsFile: "pairs.jsonl",
  pairsSha256: "0".repeat(64),
  pairCount: PAIRS.length,
  method: "eap-ig",
  igSteps: 3,
  prependBos: true,
};

async function shard(index: number, count: number, settings = SETTINGS): Promise<CircuitShardData> {
  const d = await scorePairShard(model, { pairs: TOKENS, settings, shard: { index, count } });
  assert.ok(d);
  return d;
}

describe("circuit --pairs in shards", () => {
  test("3 shards merged (any order) = one process, bit for bit; the float64 mean of the pairs; ≈ one batched task", async () => {
    const one = await shard(0, 1);
    const single = combineCircuitShards([{ where: "one", data: one }]);
    const parts = await Promise.all(
      [2, 0, 1].map(async (i) => ({ where: `s${i}`, data: await shard(i, 3) })),
    );
    const merged = combineCircuitShards(parts);
    assert.equal(JSON.stringify(merged), JSON.stringify(single));
    assert.equal(merged.pairCount, PAIRS.length);
    // Each edge: the mean of the pairs' scores, summed in file order in float64.
    const task = new CircuitTask(model, {
      clean: TOKENS.map((p) => p.clean),
      corrupted: TOKENS.map((p) => p.corrupted),
      answer: TOKENS.map((p) => p.answer),
      wrong: TOKENS.map((p) => p.wrong),
    });
    const byName = new Map(merged.edges.map((e) => [e.name, e.score]));
    for (const e of [0, 5, 100, task.graph.nEdges - 1]) {
      let sum = 0;
      for (const row of one.scores) sum += row[e];
      assert.equal(byName.get(task.graph.edge(e).name), sum / PAIRS.length, `edge ${e}`);
    }
    // Independently: one task over every pair (batched by length, float32 sums) gives the same means.
    const batched = await task.gradientScores(3);
    let largest = 0;
    for (const s of batched) largest = Math.max(largest, Math.abs(s));
    assert.ok(largest > 0);
    for (let e = 0; e < task.graph.nEdges; e++) {
      const got = byName.get(task.graph.edge(e).name) as number;
      assert.ok(Math.abs(got - batched[e]) <= 1e-4 * largest, `edge ${e}: ${got} vs ${batched[e]}`);
    }
    assert.ok(Math.abs(merged.baseline.clean - task.baseline.clean) < 1e-4);
    assert.ok(Math.abs(merged.baseline.corrupted - task.baseline.corrupted) < 1e-4);
    task.dispose();
    // Ranked by |score|.
    for (let i = 1; i < merged.edges.length; i++)
      assert.ok(Math.abs(merged.edges[i - 1].score) >= Math.abs(merged.edges[i].score));
  });

  test("the merge sums each edge's scores in file order whatever order the shards are given in", async () => {
    // Scores whose float64 sum depends on the order: (1e16 + 1) − 1e16 = 0, but (−1e16 + 1e16) + 1 = 1.
    const one = await shard(0, 1);
    const values = [1e16, 1, -1e16];
    const parts = values.map((v, i) => ({
      where: `s${i}`,
      data: {
        ...one,
        settings: { ...SETTINGS, pairCount: 3 },
        shard: { index: i, count: 3 },
        pairs: { start: i, end: i + 1 },
        cleanPer: [v],
        corruptedPer: [0],
        scores: [one.scores[0].map(() => v)],
      },
    }));
    const inOrder = (1e16 + 1 - 1e16) / 3;
    for (const order of [
      [0, 1, 2],
      [2, 0, 1],
    ]) {
      const merged = combineCircuitShards(order.map((i) => parts[i]));
      assert.equal(merged.baseline.clean, inOrder);
      for (const e of merged.edges) assert.equal(e.score, inOrder);
    }
  });

  test("a missing shard, one given twice, one of another run are refused by name", async () => {
    const parts = await Promise.all(
      [0, 1, 2].map(async (i) => ({ where: `dir${i}`, data: await shard(i, 3) })),
    );
    assert.throws(
      () => combineCircuitShards([parts[0], parts[2]]),
      /Missing shard 1\/3: run circuit --pairs … --shard 1\/3/,
    );
    assert.throws(
      () => combineCircuitShards([...parts, parts[1]]),
      /Shard 1\/3 is given twice: dir1 and dir1/,
    );
    const other = { where: "other", data: await shard(1, 3, { ...SETTINGS, igSteps: 2 }) };
    assert.throws(
      () => combineCircuitShards([parts[0], other, parts[2]]),
      /Shard 1\/3 in other is from another run .*igSteps: 3 vs 2/,
    );
  });
});

describe("circuit --pairs on the command line", () => {
  test("the single run's scores.json equals circuit-merge of its shards; slurm and kubernetes job files", async () => {
    writeFileSync(
      join(dir, "pairs.jsonl"),
      `${PAIRS.map((p) => JSON.stringify({ ...p, group: "g" })).join("\n")}\n`,
    );
    const common = ["circuit", "--model", "stories260k", "--pairs", "pairs.jsonl", "--method", "eap"];
    const one = await runCli([...common, "--out", "one"], {}, dir);
    assert.equal(one.code, 0, one.stderr);
    for (const i of [1, 0]) {
      const r = await runCli([...common, "--shard", `${i}/2`, "--out", `s/${i}`], {}, dir);
      assert.equal(r.code, 0, r.stderr);
    }
    const missing = await runCli(["circuit-merge", "s/1", "--out", "merged"], {}, dir);
    assert.notEqual(missing.code, 0);
    assert.match(missing.stderr, /Missing shard 0\/2/);
    const merged = await runCli(["circuit-merge", "s/1", "s/0", "--out", "merged"], {}, dir);
    assert.equal(merged.code, 0, merged.stderr);
    const scores = readFileSync(join(dir, "merged", "scores.json"), "utf8");
    assert.equal(scores, readFileSync(join(dir, "one", "scores.json"), "utf8"));
    assert.equal(JSON.parse(scores).method, "eap");
    const ignored = await runCli([...common, "--top-n", "5", "--out", "x"], {}, dir);
    assert.notEqual(ignored.code, 0);
    assert.match(ignored.stderr, /--top-n has no effect with --pairs/);
    const again = await runCli([...common, "--shard", "0/2", "--out", "s/0"], {}, dir);
    assert.notEqual(again.code, 0);
    assert.match(again.stderr, /already holds a circuit shard: pass --resume/);

    const slurm = await runCli(["slurm", ...common, "--shards", "2", "--out", "work", "--json"], {}, dir);
    assert.equal(slurm.code, 0, slurm.stderr);
    assert.match(
      readFileSync(join(dir, "work", "shards.sbatch"), "utf8"),
      /circuit --model stories260k --pairs pairs\.jsonl --method eap --shard auto\/2 --out \S+\/work\/shards\/"\$SLURM_ARRAY_TASK_ID" --resume/,
    );
    assert.match(
      readFileSync(join(dir, "work", "merge.sbatch"), "utf8"),
      /circuit-merge \S+\/work\/shards\/0 \S+\/work\/shards\/1 --out \S+\/work\/merged/,
    );
    const k8s = await runCli(
      [
        "kubernetes",
        ...common,
        "--shards",
        "2",
        "--out",
        join(dir, "k8s-work"),
        "--image",
        "ghcr.io/example/circuitscope:0.1.0",
        "--claim",
        "interp-data",
        "--mount-path",
        dir,
        "--manifests",
        join(dir, "jobs"),
      ],
      {},
      dir,
    );
    assert.equal(k8s.code, 0, k8s.stderr);
    const shardsDoc = parse(readFileSync(join(dir, "jobs", "job.yaml"), "utf8"));
    const mergeDoc = parse(readFileSync(join(dir, "jobs", "merge-job.yaml"), "utf8"));
    new Job(shardsDoc as never).validate();
    new Job(mergeDoc as never).validate();
    assert.equal(shardsDoc.spec.completionMode, "Indexed");
    assert.equal(shardsDoc.spec.completions, 2);
    assert.ok(shardsDoc.spec.template.spec.containers[0].command.join(" ").includes("--shard auto/2"));
    assert.ok(mergeDoc.spec.template.spec.containers[0].command.includes("circuit-merge"));
  });
});
