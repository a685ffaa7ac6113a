/**
 * Bounded work: the queue refuses jobs past its limit, runs nobody is waiting for are cancelled, and quick
 * endpoints give up with a clear error. The server runs the reference backend here and the jobs patch
 * resid_pre on 63-token prompts (192 runs, most of a second each), so a job is still queued or running
 * while the test acts on it.
 */
import assert from "node:assert/strict";
import { type ClientRequest, request as httpRequest } from "node:http";
import { after, afterEach, before, test } from "node:test";
import { TOKEN_HEADER } from "../../src/server/access-guard.ts";
import { createServer, type ExplorerServer } from "../../src/server/app.ts";
import { DEFAULT_MAX_QUEUE, type JobView } from "../../src/server/job-queue.ts";
import { FIXTURE_DIR } from "../helpers/fixture.ts";
import { referenceJson } from "../helpers/reference.ts";

const { clean, corrupted, answer, wrong } = referenceJson.prompts;
const REPEAT = 9; // 9 × 7 tokens + BOS = 64 = nCtx
const LONG_JOB = {
  kind: "patching",
  clean: clean[0].repeat(REPEAT),
  corrupted: corrupted[0].repeat(REPEAT),
  answer,
  wrong,
  target: "resid_pre",
};
const QUICK_TIMEOUT_MS = 1000;

let server: ExplorerServer;
let base: string;

before(async () => {
  server = await createServer({
    model: { model: FIXTURE_DIR, backend: "reference", process: true },
    quickTimeoutMs: QUICK_TIMEOUT_MS,
  });
  base = await server.app.listen({ port: 0, host: "127.0.0.1" });
});
afterEach(async () => {
  const open = [...unfinished()];
  server.queue.cancelAll();
  await Promise.all(open.map((id) => server.queue.settled(id)));
});
after(async () => {
  await server.close();
});

const submittedIds: string[] = [];
function* unfinished(): Generator<string> {
  for (const id of submittedIds) {
    const s = server.queue.get(id)?.status;
    if (s === "queued" || s === "running") yield id;
  }
}

function call(path: string, init: RequestInit = {}): Promise<Response> {
  return fetch(base + path, {
    ...init,
    headers: {
      ...(init.body !== undefined ? { "content-type": "application/json" } : {}),
      [TOKEN_HEADER]: server.token as string,
    },
  });
}

async function submitLongJob(): Promise<Response> {
  const res = await call("/api/jobs", { method: "POST", body: JSON.stringify(LONG_JOB) });
  if (res.status === 202) submittedIds.push(((await res.clone().json()) as JobView).id);
  return res;
}

/** The next queue update matching `pred`, or a rejection after `ms`. */
function nextUpdate(pred: (v: JobView) => boolean, ms: number): Promise<JobView> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      server.queue.events.off("update", on);
      reject(new Error(`no matching job update within ${ms} ms`));
    }, ms);
    const on = (v: JobView) => {
      if (!pred(v)) return;
      clearTimeout(timer);
      server.queue.events.off("update", on);
      resolve(v);
    };
    server.queue.events.on("update", on);
  });
}

/** Opens a job's event stream; resolves once its first event has arrived, with the request to abort. */
function openStream(id: string): Promise<{ req: ClientRequest; first: JobView }> {
  const url = new URL(`${base}/api/jobs/${id}/events`);
  return new Promise((resolve, reject) => {
    const req = httpRequest(
      {
        host: url.hostname,
        port: url.port,
        path: url.pathname,
        headers: { [TOKEN_HEADER]: server.token as string },
      },
      (res) => {
        res.setEncoding("utf8");
        res.once("data", (chunk: string) => resolve({ req, first: JSON.parse(chunk.slice(6)) as JobView }));
      },
    );
    req.on("error", (err) => {
      if (!req.destroyed) reject(err);
    });
    req.end();
  });
}

test(`the ${DEFAULT_MAX_QUEUE + 1}th job is refused with 429 and Retry-After; quick runs too; a freed slot is usable again`, async () => {
  for (let i = 0; i < DEFAULT_MAX_QUEUE; i++)
    assert.equal((await submitLongJob()).status, 202, `job ${i + 1}`);
  assert.equal([...unfinished()].length, DEFAULT_MAX_QUEUE, "all accepted jobs are still queued or running");

  const refused = await submitLongJob();
  assert.equal(refused.status, 429);
  assert.equal(refused.headers.get("retry-after"), "5");
  const body = (await refused.json()) as { error: { message: string; fix: string } };
  assert.match(body.error.message, /queue is full \(16 jobs queued or running\)/);
  assert.match(body.error.fix, /--max-queue N/);
  const predict = await call("/api/predict", { method: "POST", body: JSON.stringify({ prompt: "Hello" }) });
  assert.equal(predict.status, 429, "quick runs share the bound");
  assert.equal([...unfinished()].length, DEFAULT_MAX_QUEUE, "nothing was added by the refused requests");

  const last = submittedIds.at(-1) as string;
  assert.equal((await call(`/api/jobs/${last}`, { method: "DELETE" })).status, 200);
  assert.equal((await submitLongJob()).status, 202, "the cancelled job's place is free again");
});

test("a job whose last event stream closes is cancelled within a second; while another stream watches, it runs on", async () => {
  const res = await submitLongJob();
  const { id } = (await res.json()) as JobView;
  const a = await openStream(id);
  const b = await openStream(id);
  await nextUpdate((v) => v.id === id && v.status === "running" && (v.progress?.done ?? 0) > 0, 10_000);
  a.req.destroy();
  await new Promise((r) => setTimeout(r, 200));
  assert.equal(server.queue.get(id)?.status, "running", "the other stream still watches it");
  const t0 = performance.now();
  b.req.destroy();
  const final = await server.queue.settled(id);
  const elapsed = performance.now() - t0;
  assert.equal(final?.status, "cancelled");
  assert.ok((final?.progress?.done ?? 0) < (final?.progress?.total ?? 0), "stopped part-way");
  assert.ok(elapsed < 1000, `cancelled ${elapsed.toFixed(0)} ms after the client left`);
});

test("a quick request whose client disconnects while it waits in line is cancelled within a second", async () => {
  await submitLongJob(); // holds the model, so the predict run waits in line
  const client = new AbortController();
  const request = call("/api/predict", {
    method: "POST",
    body: JSON.stringify({ prompt: "Nobody will read this" }),
    signal: client.signal,
  }).catch(() => null);
  await new Promise((r) => setTimeout(r, 300));
  const cancelled = nextUpdate((v) => v.kind === "predict", 1000);
  const t0 = performance.now();
  client.abort();
  const view = await cancelled;
  assert.equal(view.status, "cancelled", "its first and last update is the cancellation: it never ran");
  assert.ok(performance.now() - t0 < 1000);
  await request;
});

test("a quick run that cannot finish in time gets 503 with the reason, and its job is cancelled", async () => {
  for (let i = 0; i < 3; i++) await submitLongJob(); // well over a second of work ahead of it
  const cancelled = nextUpdate((v) => v.kind === "attention", 5000);
  const t0 = performance.now();
  const res = await call("/api/attention", {
    method: "POST",
    body: JSON.stringify({ prompt: "Hello", layer: 0, head: 0 }),
  });
  const waited = performance.now() - t0;
  assert.equal(res.status, 503);
  assert.equal(res.headers.get("retry-after"), "5");
  const body = (await res.json()) as { error: { message: string; fix: string } };
  assert.match(body.error.message, /attention run did not finish within 1 s \(waiting in line included\)/);
  assert.match(body.error.fix, /cancel them/);
  assert.ok(waited >= QUICK_TIMEOUT_MS * 0.9, `answered after ${waited.toFixed(0)} ms`);
  assert.equal((await cancelled).status, "cancelled");
});
