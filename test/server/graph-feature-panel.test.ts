/**
 * In headless chromium: the explorer (`serve --transcoders` with the bundled stories260k set and its bundled
 * feature index) computes a prompt's graph, and clicking a feature node (layer L, feature F) opens that
 * transcoder feature's page below the graph: its title names L and F, and its top example is the index's top
 * example of (L, F), token for token. Error, embedding and logit nodes are not links and open nothing.
 */
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import type { Browser } from "playwright-core";
import { promptGraph } from "../../src/graphs/prompt-graph.ts";
import { loadTranscoderSet } from "../../src/graphs/transcoder-set.ts";
import { HookedTransformer } from "../../src/model/hooked-transformer.ts";
import { NeuronIndex } from "../../src/neurons/neuron-index.ts";
import { frontEndNodeKind } from "../../src/viz/graph-layout.ts";
import { displayToken } from "../../src/viz/token-labels.ts";
import { collectPageErrors, launchBrowser } from "../helpers/browser.ts";
import { computeGraphInPanel, type FixtureServer, startFixtureServer } from "./server-fixture.ts";

// An absolute path, as a user may give it: the page must name it without this machine's directories.
const SET_DIR = new URL("../../models/stories260k-transcoders", import.meta.url).pathname;
const PROMPT = "Once there was a little girl. The other day,";
let fx: FixtureServer;
let browser: Browser;

before(async () => {
  [fx, browser] = await Promise.all([
    startFixtureServer({ transcoders: SET_DIR }, "stories260k"),
    launchBrowser(),
  ]);
});
after(async () => {
  await browser?.close();
  await fx?.server.close();
});

/** The graph the explorer draws for PROMPT with the default targets and thresholds (the library's promptGraph). */
async function libraryGraph() {
  const model = await HookedTransformer.fromPretrained("stories260k", { backend: "onnx" });
  try {
    const set = await loadTranscoderSet(SET_DIR);
    const { frontEnd } = await promptGraph(model, model.toTokens(PROMPT), set, {
      prompt: PROMPT,
      slug: "explorer-graph",
      scan: "stories260k",
      nodeThreshold: 0.8,
      edgeThreshold: 0.98,
      targets: [],
    });
    return { frontEnd, strTokens: (ids: number[]) => model.toStrTokens(ids) };
  } finally {
    model.dispose();
  }
}

test("clicking a computed graph's feature node opens that transcoder feature's page; other nodes open nothing", async () => {
  const { frontEnd, strTokens } = await libraryGraph();
  // A layer-0 feature's id can equal an error node's (as in circuit-tracer): the view keeps the later node.
  const ids = frontEnd.nodes.map((n) => n.node_id);
  const unique = frontEnd.nodes.filter((n) => ids.indexOf(n.node_id) === ids.lastIndexOf(n.node_id));
  const features = unique.filter((n) => frontEndNodeKind(n) === "feature");
  const others = unique.filter((n) => frontEndNodeKind(n) !== "feature");
  // A feature above layer 0, so a link one layer off would open another feature's page.
  const node = features.find((n) => Number(n.layer) > 0);
  assert.ok(node, "the graph keeps a feature above layer 0");
  assert.ok(
    others.some((n) => frontEndNodeKind(n) === "error"),
    "the graph has error nodes to click",
  );

  const pageErrors: string[] = [];
  const page = await browser.newPage({ viewport: { width: 1400, height: 1000 } });
  collectPageErrors(page, pageErrors);
  const pageRequests: string[] = [];
  page.on("request", (r) => {
    if (r.url().includes("/api/transcoder-features/")) pageRequests.push(new URL(r.url()).pathname);
  });
  try {
    await computeGraphInPanel(page, fx, PROMPT);

    // Exactly the feature nodes are links.
    const linked = await page.$$eval("#graph-out .cs-gnode.cs-linked", (gs) =>
      gs.map((g) => (g as SVGElement).dataset.id),
    );
    assert.deepEqual(linked.sort(), features.map((n) => n.node_id).sort());

    // Error, embedding and logit nodes: a click opens no page.
    for (const kind of ["error", "embedding", "logit"]) {
      const other = others.find((n) => frontEndNodeKind(n) === kind);
      if (other) await page.click(`#graph-out .cs-gnode[data-id="${other.node_id}"]`);
    }
    assert.deepEqual(pageRequests, []);
    assert.equal(await page.textContent("#graph-feature-out"), "");

    await page.click(`#graph-out .cs-gnode[data-id="${node.node_id}"]`);
    await page.waitForSelector("#graph-feature-out[data-ready] svg");
    assert.deepEqual(pageRequests, [`/api/transcoder-features/${node.layer}/${node.feature}`]);
    const title = await page.textContent("#graph-feature-out h3");
    assert.equal(title, `Transcoder feature ${node.feature} of layer ${node.layer}`);

    // The first top example, as drawn: the index's top context of (L, F), its window of tokens.
    const index = NeuronIndex.open(`${SET_DIR}/feature-index`);
    const top = index.transcoderFeatureSummary(Number(node.layer), node.feature).examples[0];
    assert.ok(top && top.value > 0, "the feature fires in the index");
    const context = strTokens(index.contextTokens(top.contextId));
    const window = context.slice(Math.max(0, top.position - 24), top.position + 9);
    const drawn = await page.$$eval('#graph-feature-out .cs-token[data-sample="0"]', (gs) =>
      gs.map((g) => g.querySelector("text")?.textContent ?? ""),
    );
    // The first token figure on the page is the top examples'.
    assert.deepEqual(drawn.slice(0, window.length), window.map(displayToken));
    const label = await page.$$eval("#graph-feature-out svg text", (ts) =>
      ts.map((t) => t.textContent ?? "").find((s) => s.startsWith("#1 ")),
    );
    assert.match(label ?? "", new RegExp(`context ${top.contextId}, token ${top.position}\\)`));
    const text = (await page.textContent("#graph-feature-out")) ?? "";
    assert.ok(!text.includes(SET_DIR), "the page shows no absolute path");
    assert.match(
      text,
      /Transcoder set stories260k-transcoders, layer \d+'s transcoder .*; index feature-index over/,
    );
    assert.deepEqual(pageErrors, []);
  } finally {
    await page.close();
  }
});
