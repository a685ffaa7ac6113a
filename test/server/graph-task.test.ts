/**
 * The explorer computes attribution graphs: `serve --transcoders DIR` checks the set against the model at
 * start-up, a graph job (POST /api/jobs, kind "graph") runs promptGraph in the model worker behind the same
 * token and queue as other jobs, and the graph panel's form draws the result. Random transcoders on
 * stories260k (test/helpers/random-transcoder.ts).
 */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import type { Browser } from "playwright-core";
import type { FrontEndGraph } from "../../src/graphs/graph-files.ts";
import { promptGraph } from "../../src/graphs/prompt-graph.ts";
import { loadTranscoderSet, writeTranscoderSet } from "../../src/graphs/transcoder-set.ts";
import { HookedTransformer } from "../../src/model/hooked-transformer.ts";
import type { JobView } from "../../src/server/job-queue.ts";
import { MAX_GRAPH_TOKENS } from "../../src/server/validate.ts";
import { frontEndNodeKind } from "../../src/viz/graph-layout.ts";
import { collectPageErrors, launchBrowser } from "../helpers/browser.ts";
import { cliResult, spawnCli } from "../helpers/cli.ts";
import { randomTranscoderSet } from "../helpers/random-transcoder.ts";
import { computeGraphInPanel, type FixtureServer, startFixtureServer } from "./server-fixture.ts";

const MODEL = "stories260k"; // 5 layers, d_model 64
const PROMPT = "Once upon a time, there was a little girl";
const MAX_QUEUE = 2;
let dir: string;
let tcDir: string;
let fx: FixtureServer;
let browser: Browser;
const pageErrors: string[] = [];

function randomSet(dModel: number, dTc: number) {
  return randomTranscoderSet({
    layers: 5,
    dModel,
    dTc,
    seed: 11,
    jump: (l) => l % 2 === 0,
    skip: (l) => l === 3,
  });
}

before(async () => {
  dir = mkdtempSync(join(tmpdir(), "cs-graph-task-"));
  tcDir = join(dir, "tc");
  await writeTranscoderSet(tcDir, randomSet(64, 32));
  fx = await startFixtureServer({ transcoders: tcDir, maxQueue: MAX_QUEUE }, MODEL);
  browser = await launchBrowser();
});
after(async () => {
  await browser?.close();
  await fx?.server.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

function postJob(body: unknown, withToken = true): Promise<Response> {
  const init = {
    method: "POST",
    body: JSON.stringify(body),
    headers: { "content-type": "application/json" },
  };
  return withToken ? fx.api("/api/jobs", init) : fetch(`${fx.base}/api/jobs`, init);
}

interface GraphResult {
  graph: FrontEndGraph;
  replacementScore: number;
  completenessScore: number;
}

async function finished(id: string): Promise<JobView> {
  const view = await fx.server.queue.settled(id);
  assert.ok(view, `job ${id} is known`);
  return view;
}

/** The library's graph of the prompt: the same model backend, transcoders and settings as the server's. */
async function libraryGraph(prompt: string, targets: string[], nodeThreshold = 0.8, edgeThreshold = 0.98) {
  const model = await HookedTransformer.fromPretrained(MODEL, { backend: "onnx" });
  try {
    const set = await loadTranscoderSet(tcDir);
    return await promptGraph(model, model.toTokens(prompt), set, {
      prompt,
      slug: "explorer-graph",
      scan: MODEL,
      nodeThreshold,
      edgeThreshold,
      targets: targets.map((t) => model.toSingleToken(t)),
    });
  } finally {
    model.dispose();
  }
}

test("a graph job needs the token; its result is the library's graph of the prompt, every node and link", async () => {
  const body = { kind: "graph", prompt: PROMPT, targets: [" was"], nodeThreshold: 0.7 };
  assert.equal((await postJob(body, false)).status, 401);
  const r = await postJob(body);
  assert.equal(r.status, 202);
  const view = await finished(((await r.json()) as JobView).id);
  assert.equal(view.status, "done", JSON.stringify(view.error));
  const got = view.result as GraphResult;
  const want = await libraryGraph(PROMPT, [" was"], 0.7);
  assert.ok(want.attributed.graph.features.length > 0, "the random transcoders have active features");
  assert.ok(got.graph.links.length > 0);
  // Through JSON as the page receives it: every node (ids, influence, activation) and every link weight.
  assert.deepEqual(got.graph, JSON.parse(JSON.stringify(want.frontEnd)));
  assert.equal(got.replacementScore, want.scores.replacementScore);
  assert.equal(got.completenessScore, want.scores.completenessScore);
  const target = got.graph.nodes.filter((n) => n.is_target_logit);
  assert.deepEqual(
    target.map((n) => n.clerp),
    want.frontEnd.nodes.filter((n) => n.is_target_logit).map((n) => n.clerp),
  );
  assert.equal(got.graph.metadata.node_threshold, 0.7);
  assert.ok(view.progress && view.progress.total > 0, "progress counted the backward targets");
});

test("bad graph requests are refused with 400 naming the problem, before any run", async () => {
  const cases: [unknown, RegExp][] = [
    [{ kind: "graph", prompt: PROMPT, targets: ["not one token at all"] }, /target 1 .*not a single token/],
    [{ kind: "graph", prompt: PROMPT, nodeThreshold: 1.5 }, /nodeThreshold/],
    [{ kind: "graph", prompt: PROMPT, targets: [" was", " was"] }, /named twice/],
    [{ kind: "graph", prompt: " girl".repeat(MAX_GRAPH_TOKENS) }, new RegExp(`at most ${MAX_GRAPH_TOKENS}`)],
    [{ kind: "graph" }, /prompt/],
  ];
  let updates = 0;
  const onUpdate = () => updates++;
  fx.server.queue.events.on("update", onUpdate);
  for (const [body, message] of cases) {
    const r = await postJob(body);
    assert.equal(r.status, 400, JSON.stringify(body));
    const err = ((await r.json()) as { error: { message: string } }).error;
    assert.match(err.message, message);
  }
  fx.server.queue.events.off("update", onUpdate);
  assert.equal(updates, 0, "no job was queued");
});

test("without --transcoders a graph job is a 400 naming the flag, and /api/info offers no graph task", async () => {
  const plain = await startFixtureServer({}, MODEL);
  try {
    const info = (await (await plain.api("/api/info")).json()) as { features: string[] };
    assert.ok(!info.features.includes("graph"));
    const r = await plain.api("/api/jobs", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ kind: "graph", prompt: PROMPT }),
    });
    assert.equal(r.status, 400);
    const err = ((await r.json()) as { error: { fix: string } }).error;
    assert.match(err.fix, /serve --model M --transcoders DIR/);
  } finally {
    await plain.server.close();
  }
});

test("transcoders that do not fit the model, or are missing, stop start-up with the flag and the problem", async () => {
  const narrow = join(dir, "narrow");
  await writeTranscoderSet(narrow, randomSet(32, 8));
  await assert.rejects(
    startFixtureServer({ transcoders: narrow }, MODEL),
    /--transcoders .*narrow: the transcoders read d_model 32 but the model's is 64/,
  );
  await assert.rejects(
    startFixtureServer({ transcoders: join(dir, "none") }, MODEL),
    /--transcoders .*none: .*does not exist/,
  );
});

/** The longest repeat of PROMPT's words a graph job takes (MAX_GRAPH_TOKENS tokens, BOS included). */
async function longestGraphPrompt(): Promise<string> {
  const words = PROMPT.split(" ");
  let text = "";
  for (let k = 0; ; k++) {
    const next = text === "" ? words[0] : `${text} ${words[k % words.length]}`;
    const r = await fx.api("/api/tokens", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ prompt: next }),
    });
    const { tokens } = (await r.json()) as { tokens: number[] };
    if (tokens.length > MAX_GRAPH_TOKENS) return text;
    text = next;
  }
}

test("serve --transcoders with a set of another width exits non-zero naming the flag, before printing an address", async () => {
  const narrow = join(dir, "narrow-cli");
  await writeTranscoderSet(narrow, randomSet(32, 8));
  const child = spawnCli(["serve", "--model", MODEL, "--port", "0", "--transcoders", narrow]);
  try {
    const r = await cliResult(child);
    assert.notEqual(r.code, 0);
    assert.match(
      r.stderr,
      /--transcoders .*narrow-cli: the transcoders read d_model 32 but the model's is 64/,
    );
    assert.equal(r.stdout, "", "no explorer address was printed");
  } finally {
    child.kill("SIGKILL");
  }
});

test("graph jobs count in the bounded queue: past --max-queue the next is refused with 429", async () => {
  const long = { kind: "graph", prompt: await longestGraphPrompt() };
  const ids: string[] = [];
  try {
    const responses = await Promise.all(
      Array.from({ length: MAX_QUEUE + 1 }, async () => {
        const r = await postJob(long);
        if (r.status === 202) ids.push(((await r.clone().json()) as JobView).id);
        return r;
      }),
    );
    const statuses = responses.map((r) => r.status).sort();
    assert.deepEqual(statuses, [...Array(MAX_QUEUE).fill(202), 429]);
    const refused = responses.find((r) => r.status === 429) as Response;
    assert.ok(refused.headers.get("retry-after"));
  } finally {
    for (const id of ids) fx.server.queue.cancel(id);
    await Promise.all(ids.map((id) => fx.server.queue.settled(id)));
  }
});

test("the panel's form computes the prompt's graph and draws every node of it", async () => {
  const want = await libraryGraph(PROMPT, []);
  const page = await browser.newPage({ viewport: { width: 1400, height: 1000 } });
  collectPageErrors(page, pageErrors);
  try {
    await computeGraphInPanel(page, fx, PROMPT);
    const ids = await page.$$eval("#graph-out .cs-gnode", (gs) =>
      gs.map((g) => (g as SVGElement).dataset.id),
    );
    assert.equal(ids.length, want.frontEnd.nodes.length);
    assert.deepEqual(ids.sort(), want.frontEnd.nodes.map((n) => n.node_id).sort());
    assert.match((await page.textContent("#graph-out .job-status")) ?? "", /Done: \d+ nodes/);
    // These random transcoders have no feature index: feature nodes are no links, and the panel says why.
    assert.match(
      (await page.textContent("#graph-out .hint")) ?? "",
      /Feature nodes have no page: the server has no feature index of its transcoders \(build one with circuitscope index --transcoders DIR/,
    );
    assert.equal(await page.$$eval("#graph-out .cs-gnode.cs-linked", (gs) => gs.length), 0);
    // (A layer-0 feature's id can equal an error node's, as in circuit-tracer; the page keeps the later node.)
    const wantIds = want.frontEnd.nodes.map((n) => n.node_id);
    const feature = want.frontEnd.nodes.find(
      (n) =>
        frontEndNodeKind(n) === "feature" && wantIds.indexOf(n.node_id) === wantIds.lastIndexOf(n.node_id),
    );
    assert.ok(feature, "the graph keeps a feature node");
    const requests: string[] = [];
    page.on("request", (r) => requests.push(new URL(r.url()).pathname));
    await page.click(`#graph-out .cs-gnode[data-id="${feature.node_id}"]`);
    await page.waitForSelector(`#graph-out .cs-gnode.cs-clicked[data-id="${feature.node_id}"]`, {
      state: "attached",
    });
    assert.deepEqual(requests, [], "a click on a feature node asks the server nothing");
    assert.equal(await page.textContent("#graph-feature-out"), "");
    assert.deepEqual(pageErrors, []);
  } finally {
    await page.close();
  }
});
