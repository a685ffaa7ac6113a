import assert from "node:assert/strict";
import { request as httpRequest } from "node:http";
import { connect } from "node:net";
import { after, before, test } from "node:test";
import { answerReport } from "../../src/analysis/predictions.ts";
import type { HookedTransformer } from "../../src/model/hooked-transformer.ts";
import { TOKEN_HEADER } from "../../src/server/access-guard.ts";
import type { ExplorerServer } from "../../src/server/app.ts";
import type { JobView } from "../../src/server/job-queue.ts";
import { RequestChecks } from "../../src/server/validate.ts";
import { loadFixtureModel, referenceJson, referenceTensor } from "../helpers/reference.ts";
import { type FixtureServer, startFixtureServer } from "./server-fixture.ts";

let server: ExplorerServer;
let base: string;
let call: FixtureServer["api"]; // fetch with the session token
let model: HookedTransformer; // the reference backend in-process: an independent computation to compare with

const CLEAN = referenceJson.prompts.clean[0];
const CORRUPTED = referenceJson.prompts.corrupted[0];
const ANSWER = referenceJson.prompts.answer;
const WRONG = referenceJson.prompts.wrong;

before(async () => {
  ({ server, base, api: call } = await startFixtureServer());
  model = loadFixtureModel({ backend: "reference" });
});
after(async () => {
  await server.close();
});

async function post(path: string, body: unknown, raw = false) {
  const res = await call(path, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: raw ? (body as string) : JSON.stringify(body),
  });
  return { status: res.status, json: (await res.json()) as Record<string, any> };
}

/** GET with the path sent byte for byte (fetch would normalise `..` away). */
function rawGet(path: string): Promise<{ status: number; body: string }> {
  const url = new URL(base);
  return new Promise((resolve, reject) => {
    const headers = { [TOKEN_HEADER]: server.token as string };
    const req = httpRequest({ host: url.hostname, port: url.port, path, method: "GET", headers }, (res) => {
      let body = "";
      res.on("data", (c) => (body += c));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on("error", reject);
    req.end();
  });
}

function assertApiError(r: { status: number; json: Record<string, any> }, status: number, pattern: RegExp) {
  assert.equal(r.status, status, JSON.stringify(r.json));
  assert.equal(typeof r.json.error?.message, "string");
  assert.match(r.json.error.message + (r.json.error.fix ?? ""), pattern);
}

test("info describes the loaded model", async () => {
  const info = (await (await call(`/api/info`)).json()) as Record<string, any>;
  assert.deepEqual(
    [info.cfg.nLayers, info.cfg.nHeads, info.cfg.nCtx, info.cfg.dMlp],
    [model.cfg.nLayers, model.cfg.nHeads, model.cfg.nCtx, model.cfg.dMlp],
  );
  assert.ok(info.patchTargets.includes("resid_pre") && info.patchTargets.includes("head_z"));
});

test("predict returns the fixture tokens and the same top tokens and answer report as an in-process run", async () => {
  const r = await post("/api/predict", { prompt: CLEAN, answer: ANSWER, wrong: WRONG, topK: 5 });
  assert.equal(r.status, 200);
  assert.deepEqual(r.json.tokens, referenceJson.prompts.clean_tokens[0]);
  const row = model.run([r.json.tokens], { logits: "last" }).data;
  const order = Array.from(row.keys()).sort((a, b) => row[b] - row[a]);
  assert.deepEqual(
    r.json.top.map((t: { token: number }) => t.token),
    order.slice(0, 5),
  );
  const ans = answerReport(row, referenceJson.prompts.answer_token, model.tokenizer);
  assert.equal(r.json.answer.rank, ans.rank);
  assert.ok(Math.abs(r.json.answer.logit - ans.logit) < 1e-3);
  const diff = row[referenceJson.prompts.answer_token] - row[referenceJson.prompts.wrong_token];
  assert.ok(Math.abs(r.json.logitDiff - diff) < 1e-3, `${r.json.logitDiff} vs ${diff}`);
});

test("attention returns a causal, row-stochastic pattern equal to the cached hook_pattern", async () => {
  const r = await post("/api/attention", { prompt: CLEAN, layer: 1, head: 2 });
  assert.equal(r.status, 200);
  const pattern: number[][] = r.json.data.heads[0].pattern;
  const n = referenceJson.prompts.clean_tokens[0].length;
  assert.equal(pattern.length, n);
  const { cache } = model.runWithCache(CLEAN, { namesFilter: ["blocks.1.attn.hook_pattern"] });
  const ref = cache.get("blocks.1.attn.hook_pattern"); // [1, H, n, n]
  for (let d = 0; d < n; d++) {
    const sum = pattern[d].reduce((s, x) => s + x, 0);
    assert.ok(Math.abs(sum - 1) < 1e-5, `row ${d} sums to ${sum}`);
    for (let s = 0; s < n; s++) {
      if (s > d) assert.equal(pattern[d][s], 0, "no attention to later tokens");
      assert.ok(Math.abs(pattern[d][s] - ref.data[2 * n * n + d * n + s]) < 1e-4);
    }
  }
});

test('attention with heads: "all" returns every head, labelled LxHy layer by layer, equal to the cached hook_pattern', async () => {
  const r = await post("/api/attention", { prompt: CLEAN, heads: "all" });
  assert.equal(r.status, 200);
  const { nLayers, nHeads } = model.cfg;
  const heads: { label: string; pattern: number[][] }[] = r.json.data.heads;
  assert.equal(heads.length, nLayers * nHeads);
  const n = referenceJson.prompts.clean_tokens[0].length;
  const names = Array.from({ length: nLayers }, (_, l) => `blocks.${l}.attn.hook_pattern`);
  const { cache } = model.runWithCache(CLEAN, { namesFilter: names });
  heads.forEach(({ label, pattern }, k) => {
    const [layer, head] = [Math.floor(k / nHeads), k % nHeads];
    assert.equal(label, `L${layer}H${head}`);
    const ref = cache.get(`blocks.${layer}.attn.hook_pattern`).data; // [1, H, n, n]
    assert.equal(pattern.length, n);
    for (let d = 0; d < n; d++)
      for (let s = 0; s < n; s++) {
        const want = ref[(head * n + d) * n + s];
        assert.ok(
          Math.abs(pattern[d][s] - want) < 1e-4,
          `${label} [${d}][${s}]: ${pattern[d][s]} vs ${want}`,
        );
      }
  });
});

test("attention asks for one head or all, never half of one or both", async () => {
  assertApiError(await post("/api/attention", { prompt: "hi", layer: 0 }), 400, /both layer and head/);
  assertApiError(await post("/api/attention", { prompt: "hi", head: 1 }), 400, /got only head/);
  assertApiError(
    await post("/api/attention", { prompt: "hi", heads: "all", layer: 0, head: 0 }),
    400,
    /not both/,
  );
  assertApiError(await post("/api/attention", { prompt: "hi", heads: "some" }), 400, /heads/);
  const neither = await post("/api/attention", { prompt: "hi" });
  assertApiError(neither, 400, /names no head: it has neither layer and head nor heads: "all"/);
  assert.match(neither.json.error.fix, /\{"layer": 1, "head": 2\}/);
});

test("an answer equal to the wrong token is a 400 naming both and the fix, before any run (not a NaN figure)", async () => {
  const jobs = server.queue.retained().jobs;
  for (const kind of ["patching", "circuit"]) {
    const body = { kind, clean: CLEAN, corrupted: CORRUPTED, answer: ANSWER, wrong: ANSWER };
    const r = await post("/api/jobs", kind === "patching" ? { ...body, target: "head_z" } : body);
    assertApiError(r, 400, /answer and the wrong token are the same token \(id \d+\).*nothing to measure/);
    assert.match(r.json.error.fix, /different from the answer/);
  }
  assertApiError(
    await post("/api/attribution", { prompt: CLEAN, answer: WRONG, wrong: WRONG }),
    400,
    /same token/,
  );
  assert.equal(server.queue.retained().jobs, jobs, "no job was queued");
  // Different tokens still go through (the check is not "refuse everything").
  assert.equal((await post("/api/attribution", { prompt: CLEAN, answer: ANSWER, wrong: WRONG })).status, 200);
});

test("attribution reports the model's logit difference and one heatmap row per layer", async () => {
  const r = await post("/api/attribution", { prompt: CLEAN, answer: ANSWER, wrong: WRONG });
  assert.equal(r.status, 200);
  const row = model.run(CLEAN, { logits: "last" }).data;
  const diff = row[referenceJson.prompts.answer_token] - row[referenceJson.prompts.wrong_token];
  assert.ok(Math.abs(r.json.logitDiff - diff) < 1e-3);
  assert.equal(r.json.heads.length, model.cfg.nLayers);
  assert.equal(r.json.figures.heads.kind, "heatmap");
  // Head values: the fixture's reference (TransformerLens, float64) is the mean over its two clean prompts.
  const second = await post("/api/attribution", {
    prompt: referenceJson.prompts.clean[1],
    answer: ANSWER,
    wrong: WRONG,
  });
  const ref = referenceTensor("attr.heads");
  const { nLayers, nHeads } = model.cfg;
  for (let l = 0; l < nLayers; l++)
    for (let h = 0; h < nHeads; h++) {
      const got = (r.json.heads[l][h] + second.json.heads[l][h]) / 2;
      assert.ok(
        Math.abs(got - ref.data[l * nHeads + h]) < 1e-4,
        `L${l}H${h}: ${got} vs ${ref.data[l * nHeads + h]}`,
      );
    }
});

test("bad requests are rejected with a message and a fix, and the server keeps serving", async () => {
  assertApiError(await post("/api/predict", '{"prompt": "abc', true), 400, /Malformed JSON/);
  assertApiError(await post("/api/predict", "[1,2", true), 400, /JSON/);
  assertApiError(await post("/api/predict", { prompt: "x".repeat(100 * 1024) }), 413, /64 KiB/);
  assertApiError(await post("/api/predict", { prompt: 42 }), 400, /prompt.*string|must be string/);
  assertApiError(await post("/api/predict", { prompt: "hi", extra: 1 }), 400, /additional/);
  assertApiError(await post("/api/predict", {}), 400, /prompt/);
  const long = " the".repeat(70);
  assertApiError(
    await post("/api/predict", { prompt: long }),
    400,
    /71 tokens.*context is 64 tokens.*at most 63/s,
  );
  assertApiError(
    await post("/api/predict", { prompt: "hi", answer: "hello world" }),
    400,
    /2 tokens.*single token/s,
  );
  assertApiError(await post("/api/attention", { prompt: "hi", layer: 3, head: 0 }), 400, /3 layers/);
  assertApiError(await post("/api/attention", { prompt: "hi", layer: 0, head: 4 }), 400, /4 heads/);
  const job = { kind: "patching", clean: CLEAN, corrupted: CORRUPTED, answer: ANSWER, wrong: WRONG };
  assertApiError(
    await post("/api/jobs", { ...job, target: "blocks.0.hook_nope" }),
    400,
    /Unknown patching target.*resid_pre/s,
  );
  assertApiError(
    await post("/api/jobs", { ...job, target: "resid_pre", corrupted: `${CORRUPTED} now` }),
    400,
    /position by position/,
  );
  const notFound = await call(`/api/nope`);
  assert.equal(notFound.status, 404);
  assert.match(((await notFound.json()) as any).error.message, /Not found/);
  assert.equal((await call(`/api/jobs/99999`)).status, 404);
  const form = await call(`/api/predict`, {
    method: "POST",
    body: "prompt=hi",
    headers: { "content-type": "application/x-www-form-urlencoded" },
  });
  assert.equal(form.status, 415);
  // Still serving after all of that:
  const ok = await post("/api/predict", { prompt: "Hello" });
  assert.equal(ok.status, 200);
  assert.equal(ok.json.strTokens[1], "Hello");
});

test("negative and fractional layers, heads and neurons are refused: by the schema and by the checks behind it", async () => {
  assertApiError(
    await post("/api/attention", { prompt: "hi", layer: -1, head: 0 }),
    400,
    /layer must be >= 0/,
  );
  assertApiError(
    await post("/api/attention", { prompt: "hi", layer: 0, head: -2 }),
    400,
    /head must be >= 0/,
  );
  // The checks do not lean on the schema: a caller that skips it still gets a clear 400.
  const checks = new RequestChecks(model.cfg, model.tokenizer);
  const refused: [() => void, RegExp][] = [
    [() => checks.layer(-1), /layer -1 does not exist.*Use a layer from 0 to 2/s],
    [() => checks.head(-1), /head -1 does not exist.*Use a head from 0 to 3/s],
    [() => checks.neuron(-7), /neuron -7 does not exist.*Use a neuron from 0 to 255/s],
    [() => checks.layer(0.5), /layer 0.5 does not exist/],
  ];
  for (const [run, message] of refused)
    assert.throws(run, (e: Error & { status?: number; fix?: string }) => {
      assert.equal(e.status, 400);
      assert.match(`${e.message} ${e.fix}`, message);
      return true;
    });
  for (const ok of [() => checks.layer(2), () => checks.head(3), () => checks.neuron(255)]) ok();
});

test("static files come only from the app's directory: every traversal attempt is refused by the path guard", async () => {
  const attempts: [string, string][] = [
    ["/../../etc/passwd", "'.' or '..' segments"],
    ["/%2e%2e/%2e%2e/etc/passwd", "'.' or '..' segments"],
    ["/%2E%2E%2F%2E%2E%2Fetc%2Fpasswd", "encoded slashes, backslashes or NUL bytes"],
    ["/..%2f..%2fpackage.json", "encoded slashes, backslashes or NUL bytes"],
    ["/app.css/..%5c..%5c..%5cpackage.json", "encoded slashes, backslashes or NUL bytes"],
    ["/..\\..\\package.json", "encoded slashes, backslashes or NUL bytes"],
    ["/%252e%252e/package.json", "double-encoded characters"],
    ["/.%2e/.%2e/package.json", "'.' or '..' segments"],
    ["/../../../../src/server/app.ts", "'.' or '..' segments"],
    ["/%00index.html", "encoded slashes, backslashes or NUL bytes"],
    ["/.env", "hidden (dot) files"],
    ["/api/../../package.json", "'.' or '..' segments"],
  ];
  for (const [path, reason] of attempts) {
    const r = await rawGet(path);
    assert.equal(r.status, 400, `${path} → ${r.status} ${r.body}`);
    assert.deepEqual(
      JSON.parse(r.body),
      {
        error: {
          message: `Bad request path: ${reason} are not allowed.`,
          fix: "Use the page's own links; files are served only from the app's directory.",
        },
      },
      path,
    );
  }
  const page = await rawGet("/");
  assert.equal(page.status, 200);
  assert.match(page.body, /circuitscope/);
  assert.equal((await rawGet("/app.css")).status, 200);
  assert.match((await rawGet("/app.js")).body, /api\/info/);
});

/** Sends bytes on a raw socket and returns the whole answer (for requests node:http refuses to send). */
function rawSocket(bytes: string): Promise<string> {
  const url = new URL(base);
  return new Promise((resolve, reject) => {
    const socket = connect(Number(url.port), url.hostname, () => socket.end(bytes));
    let text = "";
    socket.on("data", (c) => (text += c));
    socket.on("end", () => resolve(text));
    socket.on("error", reject);
  });
}

function assertErrorShape(body: unknown, what: string): { message: string; fix?: string } {
  const b = body as { error: { message: string; fix?: string } };
  assert.deepEqual(Object.keys(b), ["error"], what);
  assert.equal(typeof b.error.message, "string", what);
  for (const key of Object.keys(b.error)) assert.ok(key === "message" || key === "fix", `${what}: ${key}`);
  return b.error;
}

test("the framework's own errors come in the documented { error: { message, fix } } shape and status", async () => {
  const host = new URL(base).host;
  // A malformed percent-encoding fails in fastify's router (FST_ERR_BAD_URL), before any hook.
  const badUrl = await call("/api/jobs/%E0%A4%A");
  assert.equal(badUrl.status, 400);
  assert.match(assertErrorShape(await badUrl.json(), "bad url").message, /invalid percent-encoding/);
  // text/plain is not JSON: 415, as the docs say (fastify would otherwise parse it and answer 400).
  const plain = await call("/api/predict", {
    method: "POST",
    body: '{"prompt":"hi"}',
    headers: { "content-type": "text/plain" },
  });
  assert.equal(plain.status, 415);
  assert.match(assertErrorShape(await plain.json(), "text/plain").message, /not JSON/);
  const empty = await call("/api/predict", {
    method: "POST",
    headers: { "content-type": "application/json" },
  });
  assert.equal(empty.status, 400);
  assert.match(assertErrorShape(await empty.json(), "empty").message, /empty/);
  const method = await call("/api/info", { method: "PATCH" });
  assert.equal(method.status, 404);
  assertErrorShape(await method.json(), "PATCH");
  // HTTP the server cannot parse is answered on the socket, still in the API's shape.
  const garbled = await rawSocket(`GET / HTTP/1.1\r\nHost: ${host}\r\nno colon here\r\n\r\n`);
  assert.match(garbled, /^HTTP\/1\.1 400 Bad Request\r\n/);
  assert.match(
    assertErrorShape(JSON.parse(garbled.split("\r\n\r\n")[1]), "garbled").message,
    /not valid HTTP/,
  );
  const huge = await rawSocket(`GET / HTTP/1.1\r\nHost: ${host}\r\nX-Big: ${"a".repeat(20_000)}\r\n\r\n`);
  assert.match(huge, /^HTTP\/1\.1 431 /);
  assert.match(
    assertErrorShape(JSON.parse(huge.split("\r\n\r\n")[1]), "huge").message,
    /headers are too large/,
  );
});

/** Follows a job's server-sent events until it finishes. */
async function followJob(id: string): Promise<JobView[]> {
  const res = await call(`/api/jobs/${id}/events`);
  assert.equal(res.headers.get("content-type"), "text/event-stream; charset=utf-8");
  const text = await res.text(); // the stream ends when the job finishes
  return text
    .split("\n\n")
    .filter((chunk) => chunk.startsWith("data: "))
    .map((chunk) => JSON.parse(chunk.slice(6)) as JobView);
}

test("a patching job streams progress and ends with the heatmap; resid_pre at layer 0 restores exactly the changed position", async () => {
  const r = await post("/api/jobs", {
    kind: "patching",
    clean: CLEAN,
    corrupted: CORRUPTED,
    answer: ANSWER,
    wrong: WRONG,
    target: "resid_pre",
  });
  assert.equal(r.status, 202);
  const events = await followJob(r.json.id);
  const last = events.at(-1) as JobView & { result: any };
  assert.equal(last.status, "done");
  const n = referenceJson.prompts.clean_tokens[0].length;
  assert.deepEqual(last.progress, { done: model.cfg.nLayers * n, total: model.cfg.nLayers * n });
  const dones = events.map((e) => e.progress?.done ?? 0);
  assert.deepEqual(
    dones,
    [...dones].sort((a, b) => a - b),
    "progress never goes back",
  );
  const layer0: number[] = last.result.values[0];
  const changed = referenceJson.prompts.clean_tokens[0].findIndex(
    (t, i) => t !== referenceJson.prompts.corrupted_tokens[0][i],
  );
  for (const [p, v] of layer0.entries())
    assert.ok(Math.abs(v - (p === changed ? 1 : 0)) < 1e-3, `pos ${p}: ${v}`);
  assert.equal(last.result.figure.kind, "heatmap");
  const polled = (await (await call(`/api/jobs/${r.json.id}`)).json()) as JobView;
  assert.equal(polled.status, "done");
});

test("DELETE cancels a queued job; the queue goes on with the others", async () => {
  const body = {
    kind: "patching",
    clean: CLEAN,
    corrupted: CORRUPTED,
    answer: ANSWER,
    wrong: WRONG,
    target: "head_pattern",
  };
  const ids: string[] = [];
  for (let i = 0; i < 6; i++) ids.push((await post("/api/jobs", body)).json.id);
  const last = ids.at(-1) as string;
  const del = await call(`/api/jobs/${last}`, { method: "DELETE" });
  assert.equal(del.status, 200);
  assert.equal(((await del.json()) as JobView).status, "cancelled");
  const again = await call(`/api/jobs/${last}`, { method: "DELETE" });
  assert.equal(again.status, 409);
  const finals = await Promise.all(ids.slice(0, -1).map((id) => server.queue.settled(id)));
  assert.deepEqual(
    finals.map((v) => v?.status),
    ["done", "done", "done", "done", "done"],
  );
});
