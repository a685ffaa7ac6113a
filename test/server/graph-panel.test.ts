/**
 * The explorer's graph panel: `serve --graph FILE` checks the file before the model loads, serves it behind
 * the session token (GET /api/graph), and the page draws it with the graph view (tested in chromium as the
 * other panels are).
 */
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import type { Browser } from "playwright-core";
import type { FrontEndGraph, FrontEndNode } from "../../src/graphs/graph-files.ts";
import { collectPageErrors, launchBrowser } from "../helpers/browser.ts";
import { cliResult, spawnCli } from "../helpers/cli.ts";
import { FIXTURE_DIR } from "../helpers/fixture.ts";
import { demoFrontEndGraph } from "../helpers/front-end-graph.ts";
import { type FixtureServer, startFixtureServer } from "./server-fixture.ts";

const FIXTURE_LAYERS = 3; // test/fixtures/tiny-gpt2: n_layer 3
const GRAPH = demoFrontEndGraph(7, FIXTURE_LAYERS, 8, 40);
let dir: string;
let graphFile: string;
let withGraph: FixtureServer;
let browser: Browser;
const pageErrors: string[] = [];

before(async () => {
  dir = mkdtempSync(join(tmpdir(), "cs-graph-panel-"));
  graphFile = join(dir, "graph.json");
  writeFileSync(graphFile, JSON.stringify(GRAPH));
  withGraph = await startFixtureServer({ graph: graphFile });
  browser = await launchBrowser();
});
after(async () => {
  await browser?.close();
  await withGraph?.server.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

test("GET /api/graph answers the file's graph, only with the session token; /api/info says a graph is there", async () => {
  const r = await withGraph.api("/api/graph");
  assert.equal(r.status, 200);
  assert.deepEqual(await r.json(), JSON.parse(readFileSync(graphFile, "utf8")));
  const noToken = await fetch(`${withGraph.base}/api/graph`);
  assert.equal(noToken.status, 401);
  assert.equal(((await (await withGraph.api("/api/info")).json()) as { graph: boolean }).graph, true);
});

test("without --graph: /api/info says none and /api/graph is a 404 naming the flag", async () => {
  const plain = await startFixtureServer();
  try {
    assert.equal(((await (await plain.api("/api/info")).json()) as { graph: boolean }).graph, false);
    const r = await plain.api("/api/graph");
    assert.equal(r.status, 404);
    const body = (await r.json()) as { error: { message: string; fix: string } };
    assert.match(body.error.fix, /serve --model M --graph graph\.json/);
  } finally {
    await plain.server.close();
  }
});

test("a bad graph file is refused before the model loads; a graph of another depth after it, naming both", async () => {
  const bad = join(dir, "bad.json");
  writeFileSync(bad, JSON.stringify({ ...GRAPH, links: [{ source: "x", target: "y", weight: 1 }] }));
  await assert.rejects(startFixtureServer({ graph: bad }), /bad\.json: links\[0\]\.source "x" is not a node/);
  // Checked first: with a model that does not exist either, the graph's error is the one reported.
  await assert.rejects(
    startFixtureServer({ graph: bad }, join(dir, "no-such-model")),
    /bad\.json: links\[0\]\.source "x" is not a node/,
  );
  const deep = join(dir, "deep.json");
  writeFileSync(deep, JSON.stringify(demoFrontEndGraph(7, FIXTURE_LAYERS + 2, 8, 40)));
  await assert.rejects(startFixtureServer({ graph: deep }), /deep\.json does not fit .*\(3 layers\)/);
});

test("serve --graph with a missing file exits non-zero with the fix", async () => {
  const child = spawnCli(["serve", "--model", FIXTURE_DIR, "--port", "0", "--graph", join(dir, "none.json")]);
  try {
    const r = await cliResult(child);
    assert.notEqual(r.code, 0);
    assert.match(
      r.stderr,
      /none\.json cannot be read \(no such file\).*circuitscope graph --out graph\.json/s,
    );
    assert.equal(r.stdout, "", "no explorer address was printed");
  } finally {
    child.kill("SIGKILL");
  }
});

test("the page's graph panel draws every node, hover lists the top edges, pin then export gives pinnedIds", async () => {
  const page = await browser.newPage({ viewport: { width: 1400, height: 1000 } });
  collectPageErrors(page, pageErrors);
  try {
    await page.goto(withGraph.withToken(`${withGraph.base}/`));
    await page.waitForSelector("#graph-out[data-ready] svg.cs-graph");
    const ids = await page.$$eval("#graph-out .cs-gnode", (gs) =>
      gs.map((g) => (g as SVGElement).dataset.id),
    );
    assert.deepEqual(ids.sort(), GRAPH.nodes.map((n) => n.node_id).sort());
    const logit = GRAPH.nodes.find((n) => n.feature_type === "logit") as FrontEndNode;
    await page.hover(`#graph-out .cs-gnode[data-id="${logit.node_id}"]`);
    const shown = await page.$$eval("#graph-out .cs-incoming li", (lis) =>
      lis.map((li) => (li as HTMLElement).dataset.id),
    );
    const want = GRAPH.links
      .filter((l) => l.target === logit.node_id)
      .sort((a, b) => Math.abs(b.weight) - Math.abs(a.weight))
      .slice(0, 5)
      .map((l) => l.source);
    assert.ok(want.length > 0);
    assert.deepEqual(shown, want);
    const pins = want.slice(0, 2);
    for (const id of pins)
      await page.click(`#graph-out .cs-gnode[data-id="${id}"]`, { modifiers: ["Shift"] });
    const [download] = await Promise.all([
      page.waitForEvent("download"),
      page.click("#graph-out .cs-export"),
    ]);
    const out = JSON.parse(readFileSync(await download.path(), "utf8")) as FrontEndGraph;
    assert.deepEqual(out.qParams.pinnedIds, pins);
    assert.deepEqual({ ...out, qParams: GRAPH.qParams }, GRAPH);
    assert.deepEqual(pageErrors, []);
  } finally {
    await page.close();
  }
});
