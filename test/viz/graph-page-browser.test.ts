/**
 * The attribution-graph page (`renderGraphPage`) in headless chromium: what is drawn is checked against the
 * graph JSON with independent computations (positions against ctx_idx and layer, colours against the signs of
 * the link weights, the hover lists against the links sorted here, subgraph sums against sums here).
 */
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { pathToFileURL } from "node:url";
import type { Browser, Page } from "playwright-core";
import type { FrontEndGraph, FrontEndNode } from "../../src/graphs/graph-files.ts";
import { GRAPH_PAGE_CSP, writeGraphPage } from "../../src/viz/index.ts";
import { launchBrowser, openWatchedPage, type WatchedPage } from "../helpers/browser.ts";
import { demoFrontEndGraph } from "../helpers/front-end-graph.ts";

const GRAPH = demoFrontEndGraph(3);
const FEATURE_URL = "features/L{layer}-F{feature}.html?at={ctx_idx}";
let browser: Browser;
let dir: string;

before(async () => {
  dir = mkdtempSync(join(tmpdir(), "cs-graph-page-"));
  browser = await launchBrowser();
});
after(async () => {
  await browser?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

let pages = 0;
/** Writes the page for `graph` and opens it offline, every request watched. */
async function openGraphPage(graph: FrontEndGraph, opts = {}): Promise<WatchedPage> {
  const path = join(dir, `graph-${pages++}.html`);
  writeGraphPage(path, graph, { model: "demo-model", edgeThreshold: 0.98, featureUrl: FEATURE_URL, ...opts });
  const w = await openWatchedPage(browser, { width: 1400, height: 1000 });
  await w.page.goto(pathToFileURL(path).href);
  await w.page.waitForSelector("body[data-cs-ready]", { timeout: 20000 });
  return w;
}

/** The row a node belongs on, from the JSON alone: embeddings 0, layer l at l + 1, logits above every layer. */
function expectedRow(n: FrontEndNode): number {
  if (n.feature_type === "embedding") return 0;
  if (n.feature_type === "logit") return 1e9;
  return Number(n.layer) + 1;
}

/** The centre of each node's drawn shape, in page pixels. */
async function drawnCentres(page: Page): Promise<Map<string, { x: number; y: number; kind: string }>> {
  const list = await page.$$eval(".cs-gnode", (gs) =>
    gs.map((g) => {
      const r = (g.querySelector(".cs-shape") as SVGGraphicsElement).getBoundingClientRect();
      return {
        id: (g as SVGGElement).dataset.id as string,
        tag: (g.querySelector(".cs-shape") as Element).tagName,
        x: r.x + r.width / 2,
        y: r.y + r.height / 2,
      };
    }),
  );
  return new Map(list.map((n) => [n.id, { x: n.x, y: n.y, kind: n.tag }]));
}

async function exported(page: Page): Promise<FrontEndGraph> {
  const [download] = await Promise.all([page.waitForEvent("download"), page.click(".cs-export")]);
  return JSON.parse(readFileSync(await download.path(), "utf8"));
}

const rgb = (css: string) => {
  const m = /^#([0-9a-f]{2})([0-9a-f]{2})([0-9a-f]{2})$/i.exec(css);
  assert.ok(m, `colour ${css}`);
  return [1, 2, 3].map((i) => Number.parseInt(m[i], 16));
};

test("every node of the JSON is drawn once, errors as squares and features as circles; inputs stated; offline", async () => {
  const w = await openGraphPage(GRAPH);
  try {
    const drawn = await drawnCentres(w.page);
    assert.deepEqual([...drawn.keys()].sort(), GRAPH.nodes.map((n) => n.node_id).sort());
    for (const n of GRAPH.nodes) {
      const tag = drawn.get(n.node_id)?.kind;
      if (n.feature_type === "cross layer transcoder") assert.equal(tag, "circle", n.node_id);
      if (n.feature_type === "mlp reconstruction error") assert.equal(tag, "rect", n.node_id);
    }
    const inputs = await w.page.$$eval("dl.cs-inputs dt", (dts) =>
      Object.fromEntries(dts.map((dt) => [dt.textContent, dt.nextElementSibling?.textContent])),
    );
    assert.equal(inputs.Model, "demo-model");
    assert.equal(inputs.Prompt, GRAPH.metadata.prompt);
    assert.equal(inputs.Transcoders, "random-transcoders");
    assert.equal(inputs.Thresholds, "node 0.8, edge 0.98");
    assert.equal(inputs.Scores, "not given", "scores not passed never read as a number");
    const nFeatures = GRAPH.nodes.filter((n) => n.feature_type === "cross layer transcoder").length;
    assert.equal(
      inputs.Kept,
      `${GRAPH.nodes.length} nodes (${nFeatures} features), ${GRAPH.links.length} edges`,
    );
    const csp = await w.page.$eval('meta[http-equiv="Content-Security-Policy"]', (m) =>
      m.getAttribute("content"),
    );
    assert.equal(csp, GRAPH_PAGE_CSP);
    assert.match(csp ?? "", /default-src 'none'/);
    assert.deepEqual(w.errors, []);
    assert.deepEqual(w.networkAttempts, []);
  } finally {
    await w.context.close();
  }
});

test("positions: x grows with ctx_idx, y goes up with the layer (embeddings at the bottom, logits at the top)", async () => {
  const w = await openGraphPage(GRAPH);
  try {
    const drawn = await drawnCentres(w.page);
    let pairs = 0;
    for (const a of GRAPH.nodes)
      for (const b of GRAPH.nodes) {
        const pa = drawn.get(a.node_id) as { x: number; y: number };
        const pb = drawn.get(b.node_id) as { x: number; y: number };
        if (a.ctx_idx < b.ctx_idx) assert.ok(pa.x < pb.x, `${a.node_id} left of ${b.node_id}`);
        if (expectedRow(a) < expectedRow(b)) {
          assert.ok(pa.y > pb.y, `${a.node_id} below ${b.node_id}`);
          pairs++;
        }
      }
    assert.ok(pairs > 100);
    // The x axis names the prompt tokens, left to right, each under its own column of nodes.
    const labels = await w.page.$$eval(".cs-token-label", (ts) =>
      ts.map((t) => ({
        ctx: Number((t as SVGElement).dataset.ctx),
        text: t.textContent ?? "",
        right: t.getBoundingClientRect().right,
      })),
    );
    assert.equal(labels.length, GRAPH.metadata.prompt_tokens.length);
    for (const [i, l] of labels.entries()) {
      assert.equal(l.ctx, i);
      assert.ok(l.text.endsWith(` ${i}`));
      if (i > 0) assert.ok(l.right > labels[i - 1].right);
      const embedding = GRAPH.nodes.find(
        (n) => n.feature_type === "embedding" && n.ctx_idx === i,
      ) as FrontEndNode;
      const e = drawn.get(embedding.node_id) as { x: number };
      assert.ok(Math.abs(l.right - e.x) < 20, `token ${i}'s label ends under its embedding node`);
    }
  } finally {
    await w.context.close();
  }
});

test("edges: one per link, coloured by the weight's sign, width by |weight| on one scale; the legend states the unit", async () => {
  const w = await openGraphPage(GRAPH);
  try {
    const edges = await w.page.$$eval(".cs-gedge", (ps) =>
      ps.map((p) => ({
        source: (p as SVGElement).dataset.source as string,
        target: (p as SVGElement).dataset.target as string,
        stroke: p.getAttribute("stroke") as string,
        width: Number(p.getAttribute("stroke-width")),
      })),
    );
    assert.equal(edges.length, GRAPH.links.length);
    const weight = new Map(GRAPH.links.map((l) => [`${l.source}>${l.target}`, l.weight]));
    const maxAbs = Math.max(...GRAPH.links.map((l) => Math.abs(l.weight)));
    let pos = 0;
    let neg = 0;
    for (const e of edges) {
      const wgt = weight.get(`${e.source}>${e.target}`) as number;
      assert.ok(wgt !== undefined, `an edge ${e.source} → ${e.target} of the JSON`);
      const [r, , b] = rgb(e.stroke);
      if (wgt > 0) {
        assert.ok(b >= r, `positive ${wgt} drawn blue (${e.stroke})`);
        pos++;
      } else {
        assert.ok(r >= b, `negative ${wgt} drawn red (${e.stroke})`);
        neg++;
      }
      if (Math.abs(wgt) > 0.5 * maxAbs) assert.notEqual(r, b, "a strong edge is visibly coloured");
    }
    assert.ok(pos > 5 && neg > 5, `both signs present (${pos} +, ${neg} −)`);
    const byStrength = [...edges].sort(
      (a, b) =>
        Math.abs(weight.get(`${a.source}>${a.target}`) as number) -
        Math.abs(weight.get(`${b.source}>${b.target}`) as number),
    );
    for (let i = 1; i < byStrength.length; i++) assert.ok(byStrength[i].width >= byStrength[i - 1].width);
    const [lo, hi] = await w.page.$$eval(".cs-scale-min, .cs-scale-max", (ts) =>
      ts.map((t) => Number((t.textContent ?? "").replace("\u2212", "-"))),
    );
    assert.ok(
      Math.abs(hi - maxAbs) < 1e-3 * maxAbs && Math.abs(lo + maxAbs) < 1e-3 * maxAbs,
      `legend ${lo}..${hi}`,
    );
    const unit = await w.page.locator(".cs-edge-unit").innerText();
    assert.match(
      unit,
      /direct effect of the source on the target's pre-activation \(feature\) or demeaned logit/,
    );
  } finally {
    await w.context.close();
  }
});

test("hovering a node lists its strongest incoming and outgoing edges, as sorted here from the links", async () => {
  const w = await openGraphPage(GRAPH);
  try {
    const degree = (id: string) => GRAPH.links.filter((l) => l.source === id || l.target === id).length;
    const feature = [...GRAPH.nodes]
      .filter((n) => n.feature_type === "cross layer transcoder")
      .sort((a, b) => degree(b.node_id) - degree(a.node_id))[0];
    const logit = GRAPH.nodes.find((n) => n.feature_type === "logit") as FrontEndNode;
    const token = [...GRAPH.nodes]
      .filter((n) => n.feature_type === "embedding")
      .sort((a, b) => degree(b.node_id) - degree(a.node_id))[0];
    for (const node of [feature, logit, token]) {
      await w.page.hover(`.cs-gnode[data-id="${node.node_id}"]`);
      await w.page.waitForSelector(`.cs-node-info[data-id="${node.node_id}"]`);
      for (const dir of ["incoming", "outgoing"] as const) {
        const want = GRAPH.links
          .filter((l) => (dir === "incoming" ? l.target : l.source) === node.node_id)
          .map((l) => ({ id: dir === "incoming" ? l.source : l.target, w: l.weight }))
          .sort((a, b) => Math.abs(b.w) - Math.abs(a.w))
          .slice(0, 5);
        const shown = await w.page.$$eval(`.cs-node-info .cs-${dir} li`, (lis) =>
          lis.map((li) => ({
            id: (li as HTMLElement).dataset.id,
            w: Number(li.querySelector(".cs-w")?.textContent),
          })),
        );
        assert.deepEqual(
          shown.map((s) => s.id),
          want.map((x) => x.id),
          `${dir} of ${node.node_id}`,
        );
        for (const [i, s] of shown.entries())
          assert.ok(Math.abs(s.w - want[i].w) <= 1e-3 * Math.abs(want[i].w));
      }
      // The hovered node's edges stand out; the others fade.
      const on = await w.page.$$eval(".cs-highlight .cs-gedge-on", (ps) =>
        ps.map((p) => `${(p as SVGElement).dataset.source}>${(p as SVGElement).dataset.target}`),
      );
      const touching = GRAPH.links
        .filter((l) => l.source === node.node_id || l.target === node.node_id)
        .map((l) => `${l.source}>${l.target}`);
      assert.deepEqual(on.sort(), touching.sort());
    }
    assert.ok(degree(feature.node_id) > 2);
    // A value a node kind does not have reads "not computed", not 0.
    const error = GRAPH.nodes.find((n) => n.feature_type === "mlp reconstruction error") as FrontEndNode;
    await w.page.hover(`.cs-gnode[data-id="${error.node_id}"]`);
    assert.match(await w.page.locator(".cs-info-values").innerText(), /activation not computed/);
    await w.page.hover(`.cs-gnode[data-id="${logit.node_id}"]`);
    assert.match(await w.page.locator(".cs-info-values").innerText(), /influence not computed/);
  } finally {
    await w.context.close();
  }
});

test("clicking a feature opens its page from the link template; the last click round-trips as clickedId", async () => {
  const w = await openGraphPage(GRAPH);
  try {
    await w.page.evaluate(() => {
      const opened: string[] = [];
      (window as unknown as { opened: string[] }).opened = opened;
      window.open = (url?: string | URL) => {
        opened.push(String(url));
        return null;
      };
    });
    const feature = GRAPH.nodes.find((n) => n.feature_type === "cross layer transcoder") as FrontEndNode;
    const error = GRAPH.nodes.find((n) => n.feature_type === "mlp reconstruction error") as FrontEndNode;
    await w.page.click(`.cs-gnode[data-id="${feature.node_id}"]`);
    await w.page.click(`.cs-gnode[data-id="${error.node_id}"]`);
    const opened = await w.page.evaluate(() => (window as unknown as { opened: string[] }).opened);
    assert.deepEqual(opened, [`features/L${feature.layer}-F${feature.feature}.html?at=${feature.ctx_idx}`]);
    // The last click is circuit-tracer's qParams.clickedId; a page opened from that JSON shows its details.
    const out = await exported(w.page);
    assert.equal(out.qParams.clickedId, error.node_id);
    const again = await openGraphPage(out);
    try {
      assert.equal(await again.page.locator(".cs-node-info").getAttribute("data-id"), error.node_id);
      assert.equal(await again.page.locator(".cs-gnode.cs-clicked").getAttribute("data-id"), error.node_id);
    } finally {
      await again.context.close();
    }
  } finally {
    await w.context.close();
  }
});

test("pin then export: the JSON comes back with the pins in qParams.pinnedIds and nothing else changed", async () => {
  const w = await openGraphPage(GRAPH);
  try {
    const ids = [GRAPH.nodes[4], GRAPH.nodes[0], GRAPH.nodes.at(-1) as FrontEndNode].map((n) => n.node_id);
    for (const id of ids) await w.page.click(`.cs-gnode[data-id="${id}"]`, { modifiers: ["Shift"] });
    const pinnedDrawn = await w.page.$$eval(".cs-gnode.cs-pinned", (gs) =>
      gs.map((g) => (g as SVGElement).dataset.id),
    );
    assert.deepEqual(pinnedDrawn.sort(), [...ids].sort());
    const out = await exported(w.page);
    assert.deepEqual(out.qParams.pinnedIds, ids);
    assert.deepEqual({ ...out, qParams: GRAPH.qParams }, GRAPH);
    // Shift-click again unpins.
    await w.page.click(`.cs-gnode[data-id="${ids[1]}"]`, { modifiers: ["Shift"] });
    assert.deepEqual((await exported(w.page)).qParams.pinnedIds, [ids[0], ids[2]]);
  } finally {
    await w.context.close();
  }
});

/** Σ link weight from group to group, computed here: the subgraph table's reference. */
function groupSums(groups: Record<string, string[]>): Map<string, number> {
  const of = new Map<string, string>();
  for (const [g, ids] of Object.entries(groups)) for (const id of ids) of.set(id, g);
  const sums = new Map<string, number>();
  for (const l of GRAPH.links) {
    const s = of.get(l.source);
    const t = of.get(l.target);
    if (s && t && s !== t) sums.set(`${s}>${t}`, (sums.get(`${s}>${t}`) ?? 0) + l.weight);
  }
  return sums;
}

async function subgraphRows(page: Page): Promise<Map<string, number>> {
  const rows = await page.$$eval(".cs-subgraph tr[data-source]", (trs) =>
    trs.map((tr) => {
      const d = (tr as HTMLElement).dataset;
      return [`${d.source}>${d.target}`, Number(d.weight)] as [string, number];
    }),
  );
  return new Map(rows);
}

test("supernodes: pinned nodes grouped under a name; the subgraph sums the links between groups; export round-trips", async () => {
  // A token, the features it feeds and a logit: connected, so the groups have edges between them.
  const token = GRAPH.nodes.find(
    (n) => n.feature_type === "embedding" && GRAPH.links.filter((l) => l.source === n.node_id).length >= 2,
  ) as FrontEndNode;
  const fed = GRAPH.links.filter((l) => l.source === token.node_id).map((l) => l.target);
  const logit = GRAPH.nodes.find((n) => n.feature_type === "logit") as FrontEndNode;
  const w = await openGraphPage(GRAPH);
  try {
    for (const id of fed) await w.page.click(`.cs-gnode[data-id="${id}"]`, { modifiers: ["Shift"] });
    await w.page.fill(".cs-supernode-name", "fed by the token");
    await w.page.click(".cs-group");
    for (const id of [token.node_id, logit.node_id])
      await w.page.click(`.cs-gnode[data-id="${id}"]`, { modifiers: ["Shift"] });
    const out = await exported(w.page);
    assert.deepEqual(out.qParams.supernodes, [["fed by the token", ...fed]]);
    assert.deepEqual(out.qParams.pinnedIds, [...fed, token.node_id, logit.node_id]);
    const marked = await w.page.$$eval('.cs-gnode[data-supernode="fed by the token"]', (gs) =>
      gs.map((g) => (g as SVGElement).dataset.id),
    );
    assert.deepEqual(marked.sort(), [...fed].sort());
    const want = groupSums({
      "fed by the token": fed,
      [token.node_id]: [token.node_id],
      [logit.node_id]: [logit.node_id],
    });
    const shown = await subgraphRows(w.page);
    assert.deepEqual([...shown.keys()].sort(), [...want.keys()].sort());
    assert.ok(shown.size >= 1);
    for (const [k, v] of want) assert.ok(Math.abs((shown.get(k) as number) - v) < 1e-9, k);

    // The exported JSON opened again shows the same pins and supernodes, and exports itself unchanged.
    const again = await openGraphPage(out);
    try {
      const pinned = await again.page.$$eval(".cs-gnode.cs-pinned", (gs) =>
        gs.map((g) => (g as SVGElement).dataset.id),
      );
      assert.deepEqual(pinned.sort(), [...out.qParams.pinnedIds].sort());
      assert.deepEqual(await subgraphRows(again.page), shown);
      assert.deepEqual(await exported(again.page), out);
    } finally {
      await again.context.close();
    }
  } finally {
    await w.context.close();
  }
});

test("a graph without links draws its nodes and no edge scale (nothing made up)", async () => {
  const w = await openGraphPage({ ...GRAPH, links: [] });
  try {
    assert.equal(await w.page.locator(".cs-gnode").count(), GRAPH.nodes.length);
    assert.equal(await w.page.locator(".cs-gedge").count(), 0);
    assert.equal(await w.page.locator(".cs-scale-min, .cs-scale-max").count(), 0);
    assert.match((await w.page.locator(".cs-no-edges").textContent()) ?? "", /No edges/);
    assert.deepEqual(w.errors, []);
  } finally {
    await w.context.close();
  }
});
