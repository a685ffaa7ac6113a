import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { createProgress } from "../../src/util/progress.ts";
import { parseShard, resolveShard } from "../../src/util/shard.ts";

describe("--shard auto reads the engine's task index", () => {
  test("i/n is taken as written, whatever the environment", () => {
    assert.deepEqual(resolveShard("2/5", { SLURM_ARRAY_TASK_ID: "0", SLURM_ARRAY_TASK_COUNT: "9" }), {
      index: 2,
      count: 5,
    });
    assert.deepEqual(parseShard("0/1"), { index: 0, count: 1 });
    for (const bad of ["5/5", "-1/4", "1/0", "a/b", "1/2/3", "", "auto/x"])
      assert.throws(() => resolveShard(bad, {}), /Bad shard/, bad);
  });

  test("a Slurm array task: the index counts from the array's first task", () => {
    assert.deepEqual(resolveShard("auto", { SLURM_ARRAY_TASK_ID: "3", SLURM_ARRAY_TASK_COUNT: "4" }), {
      index: 3,
      count: 4,
    });
    // --array=1-4: tasks 1..4 are shards 0..3.
    const oneBased = { SLURM_ARRAY_TASK_ID: "1", SLURM_ARRAY_TASK_MIN: "1", SLURM_ARRAY_TASK_MAX: "4" };
    assert.deepEqual(resolveShard("auto", oneBased), { index: 0, count: 4 });
    assert.deepEqual(
      resolveShard("auto", { ...oneBased, SLURM_ARRAY_TASK_ID: "4", SLURM_ARRAY_TASK_COUNT: "4" }),
      {
        index: 3,
        count: 4,
      },
    );
    // auto/N: the task's own number is the shard, whatever the array's size (a task re-run alone: --array=2).
    const rerun = {
      SLURM_ARRAY_TASK_ID: "2",
      SLURM_ARRAY_TASK_MIN: "2",
      SLURM_ARRAY_TASK_MAX: "2",
      SLURM_ARRAY_TASK_COUNT: "1",
    };
    assert.deepEqual(resolveShard("auto/4", rerun), { index: 2, count: 4 });
    // The same environment read by plain auto is shard 0 of 1: why the job files write auto/N.
    assert.deepEqual(resolveShard("auto", rerun), { index: 0, count: 1 });
  });

  test("inconsistent Slurm variables are refused, naming the fix", () => {
    // --array=0-6:2 has 4 tasks spread over 0..6: task ids are not shard indexes.
    assert.throws(
      () =>
        resolveShard("auto", {
          SLURM_ARRAY_TASK_ID: "2",
          SLURM_ARRAY_TASK_MIN: "0",
          SLURM_ARRAY_TASK_MAX: "6",
          SLURM_ARRAY_TASK_COUNT: "4",
        }),
      /not contiguous.*--array=0-3/,
    );
    assert.throws(
      () => resolveShard("auto", { SLURM_ARRAY_TASK_ID: "5", SLURM_ARRAY_TASK_COUNT: "4" }),
      /outside the array 0-3/,
    );
    assert.throws(() => resolveShard("auto", { SLURM_ARRAY_TASK_ID: "1" }), /how many shards.*auto\/N/);
    assert.throws(
      () => resolveShard("auto", { SLURM_ARRAY_TASK_ID: "x1", SLURM_ARRAY_TASK_COUNT: "4" }),
      /SLURM_ARRAY_TASK_ID="x1" is not a whole number/,
    );
    assert.throws(
      () => resolveShard("auto/3", { SLURM_ARRAY_TASK_ID: "3", SLURM_ARRAY_TASK_COUNT: "4" }),
      /SLURM_ARRAY_TASK_ID=3 is not below the 3 shards.*--array=0-2/,
    );
  });

  test("a Kubernetes Indexed Job pod: the index from JOB_COMPLETION_INDEX, the count from the command line", () => {
    assert.deepEqual(resolveShard("auto/4", { JOB_COMPLETION_INDEX: "3" }), { index: 3, count: 4 });
    assert.throws(() => resolveShard("auto", { JOB_COMPLETION_INDEX: "0" }), /write --shard auto\/N/);
    assert.throws(() => resolveShard("auto/4", { JOB_COMPLETION_INDEX: "4" }), /not below the 4 shards/);
    assert.throws(() => resolveShard("auto/0", { JOB_COMPLETION_INDEX: "0" }), /at least 1/);
    assert.throws(
      () =>
        resolveShard("auto/4", {
          JOB_COMPLETION_INDEX: "1",
          SLURM_ARRAY_TASK_ID: "2",
          SLURM_ARRAY_TASK_COUNT: "4",
        }),
      /disagree/,
    );
    assert.deepEqual(
      resolveShard("auto/4", {
        JOB_COMPLETION_INDEX: "2",
        SLURM_ARRAY_TASK_ID: "2",
        SLURM_ARRAY_TASK_COUNT: "4",
      }),
      { index: 2, count: 4 },
    );
  });

  test("outside an engine, auto is an error that says what to write instead", () => {
    assert.throws(
      () => resolveShard("auto", {}),
      /neither SLURM_ARRAY_TASK_ID .* nor JOB_COMPLETION_INDEX .*--shard i\/n/,
    );
    assert.throws(() => resolveShard("auto/2", { SLURM_ARRAY_TASK_ID: "" }), /neither/);
  });
});

describe("progress lines for a batch job's log", () => {
  test("a line at the start, one per interval and one at the end, with count, share and rate", () => {
    const lines: string[] = [];
    let t = 0;
    const p = createProgress(
      { label: "Indexing", total: 1000, unit: "tokens" },
      { lines: true, write: (l) => lines.push(l), now: () => t },
    );
    assert.deepEqual(lines, ["Indexing: 0/1000 tokens (0.0%), 0 s\n"]);
    t = 10_000;
    p.tick(100); // 10 s: no new line yet
    assert.equal(lines.length, 1);
    t = 31_000;
    p.tick(200); // 31 s: first line
    t = 40_000;
    p.tick(100);
    p.stop();
    assert.equal(lines.length, 3);
    assert.equal(lines[1], "Indexing: 300/1000 tokens (30.0%), 10 tokens/s, 31 s\n");
    assert.equal(lines[2], "Indexing: 400/1000 tokens (40.0%), 10 tokens/s, 40 s\n");
  });

  test("quiet (--json) writes nothing even when lines are asked for", () => {
    const lines: string[] = [];
    const p = createProgress(
      { label: "x", total: 2, quiet: true },
      { lines: true, write: (l) => lines.push(l) },
    );
    p.tick(2);
    p.stop();
    assert.deepEqual(lines, []);
  });
});
