import assert from "node:assert/strict";
import { test } from "node:test";
import { type JobContext, JobQueue, type JobView } from "../../src/server/job-queue.ts";

/** A runner whose jobs finish only when the test says so, recording start order and concurrency. */
function controlledRunner() {
  const started: string[] = [];
  const gates = new Map<string, { resolve(v: unknown): void; reject(e: Error): void; ctx: JobContext }>();
  let active = 0;
  let maxActive = 0;
  const runner = (_kind: string, params: unknown, ctx: JobContext) =>
    new Promise((resolve, reject) => {
      const name = (params as { name: string }).name;
      started.push(name);
      active++;
      maxActive = Math.max(maxActive, active);
      const done = () => active--;
      ctx.signal.addEventListener("abort", () => {
        done();
        reject(new Error("aborted"));
      });
      gates.set(name, {
        resolve: (v) => {
          done();
          resolve(v);
        },
        reject: (e) => {
          done();
          reject(e);
        },
        ctx,
      });
    });
  return { runner, started, gates, maxActive: () => maxActive };
}

const tick = () => new Promise((r) => setImmediate(r));

test("jobs run one at a time in submission order", async () => {
  const r = controlledRunner();
  const q = new JobQueue(r.runner);
  const ids = ["a", "b", "c"].map((name) => q.submit("t", { name }).id);
  await tick();
  assert.deepEqual(r.started, ["a"]);
  assert.equal(q.get(ids[1])?.status, "queued");
  assert.equal(q.get(ids[2])?.position, 1);
  r.gates.get("a")?.resolve(1);
  await tick();
  assert.deepEqual(r.started, ["a", "b"]);
  r.gates.get("b")?.resolve(2);
  await tick();
  r.gates.get("c")?.resolve(3);
  const views = await Promise.all(ids.map((id) => q.settled(id)));
  assert.deepEqual(
    views.map((v) => [v?.status, v?.result]),
    [
      ["done", 1],
      ["done", 2],
      ["done", 3],
    ],
  );
  assert.equal(r.maxActive(), 1);
});

test("progress is reported, failures keep their message and fix, later jobs still run", async () => {
  const r = controlledRunner();
  const q = new JobQueue(r.runner);
  const updates: JobView[] = [];
  q.events.on("update", (v: JobView) => updates.push(v));
  const a = q.submit("t", { name: "a" }).id;
  const b = q.submit("t", { name: "b" }).id;
  await tick();
  r.gates.get("a")?.ctx.progress({ done: 3, total: 10 });
  assert.deepEqual(q.get(a)?.progress, { done: 3, total: 10 });
  r.gates.get("a")?.reject(Object.assign(new Error("bad answer token"), { fix: "use one token" }));
  await tick();
  assert.deepEqual(q.get(a)?.error, { message: "bad answer token", fix: "use one token" });
  assert.equal(q.get(a)?.status, "failed");
  r.gates.get("b")?.resolve("ok");
  assert.equal((await q.settled(b))?.status, "done");
  const statusesOfA = updates.filter((u) => u.id === a).map((u) => u.status);
  assert.deepEqual(statusesOfA, ["running", "running", "failed"]);
});

test("cancelling a queued job removes it; cancelling a running job aborts its signal", async () => {
  const r = controlledRunner();
  const q = new JobQueue(r.runner);
  const a = q.submit("t", { name: "a" }).id;
  const b = q.submit("t", { name: "b" }).id;
  const c = q.submit("t", { name: "c" }).id;
  await tick();
  assert.equal(q.cancel(b), true);
  assert.equal(q.get(b)?.status, "cancelled");
  assert.equal(q.get(c)?.position, 0, "c moves up when b leaves the line");
  assert.equal(q.cancel(a), true);
  assert.equal((await q.settled(a))?.status, "cancelled");
  await tick();
  assert.deepEqual(r.started, ["a", "c"], "b never started");
  r.gates.get("c")?.resolve("ok");
  assert.equal((await q.settled(c))?.status, "done");
  assert.equal(q.cancel(c), false, "a finished job cannot be cancelled");
  assert.equal(q.cancel("nope"), false);
});

test("run() resolves with the result or rejects with the error", async () => {
  const q = new JobQueue(async (_k, p) => {
    const n = (p as { n: number }).n;
    if (n < 0) throw new Error(`negative ${n}`);
    return n * 2;
  });
  assert.equal(await q.run("double", { n: 21 }), 42);
  await assert.rejects(q.run("double", { n: -1 }), /negative -1/);
});

/** A runner whose result is `n` numbers: about 2n bytes as JSON ("0,"). */
const sized = async (_k: string, p: unknown) => new Array((p as { n: number }).n).fill(0);

/** Bytes a client fetching the job would get, counted independently of the queue's own bookkeeping. */
const viewBytes = (v: JobView | undefined) => (v ? Buffer.byteLength(JSON.stringify(v)) : 0);

test("quick runs leave nothing behind: 200 run() calls with large results keep no job and no bytes", async () => {
  const q = new JobQueue(sized);
  const ids = new Set<string>();
  q.events.on("update", (v: JobView) => ids.add(v.id));
  for (let i = 0; i < 200; i++) {
    const result = (await q.run("attention", { n: 50_000 })) as number[];
    assert.equal(result.length, 50_000, "the caller still gets the whole result");
  }
  await assert.rejects(q.run("attention", { n: -1 }), /Invalid array length/);
  assert.equal(ids.size, 201);
  const kept = [...ids].filter((id) => q.get(id) !== undefined);
  assert.deepEqual(kept, [], "no client was given these ids, so none is kept");
  assert.deepEqual(q.retained(), { jobs: 0, bytes: 0 });
});

test("finished background jobs are kept by bytes, not entries: the newest that fit, oldest dropped first", async () => {
  const oneJob = viewBytes({
    id: "0".repeat(32),
    kind: "patching",
    status: "done",
    progress: null,
    result: new Array(10_000).fill(0),
    createdAt: new Date().toISOString(),
  });
  const keepBytes = Math.floor(3.5 * oneJob);
  const q = new JobQueue(sized, { keepBytes });
  const big: string[] = [];
  for (let i = 0; i < 10; i++) {
    const { id } = q.submit("patching", { n: 10_000 });
    await q.settled(id);
    big.push(id);
  }
  const keptBig = big.filter((id) => q.get(id) !== undefined);
  assert.deepEqual(keptBig, big.slice(-3), "the three newest fit in 3.5 jobs' bytes");
  const measured = keptBig.reduce((sum, id) => sum + viewBytes(q.get(id)), 0);
  assert.deepEqual(q.retained(), { jobs: 3, bytes: measured });
  assert.ok(measured <= keepBytes, `${measured} B kept, bound ${keepBytes} B`);
  // Small results: many more entries fit in the same bytes — the bound is bytes, not a count.
  const small: string[] = [];
  for (let i = 0; i < 300; i++) {
    const { id } = q.submit("patching", { n: 1 });
    await q.settled(id);
    small.push(id);
  }
  const keptSmall = small.filter((id) => q.get(id) !== undefined);
  const bytesNow = [...big, ...small].reduce((sum, id) => sum + viewBytes(q.get(id)), 0);
  assert.ok(keptSmall.length > 100, `${keptSmall.length} small jobs kept`);
  assert.ok(bytesNow <= keepBytes, `${bytesNow} B kept, bound ${keepBytes} B`);
  assert.deepEqual(q.retained(), {
    jobs: keptSmall.length + big.filter((id) => q.get(id)).length,
    bytes: bytesNow,
  });
  // A result larger than the whole bound is still kept until a newer job arrives (its client is about to read it).
  const huge = q.submit("patching", { n: 50_000 }).id;
  await q.settled(huge);
  assert.equal(q.get(huge)?.status, "done");
  assert.deepEqual(q.retained().jobs, 1);
});
