/**
 * `graph --html F --feature-pages DIR`: a page for every feature node the graph keeps, named so that the graph
 * page's link opens it. In headless chromium: clicking a feature node opens a file that exists and is that
 * feature's page.
 */
import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { pathToFileURL } from "node:url";
import type { Browser } from "playwright-core";
import type { FrontEndNode } from "../../src/graphs/graph-files.ts";
import { HookedTransformer } from "../../src/model/hooked-transformer.ts";
import {
  featurePagesUrl,
  graphFeatures,
  writeGraphFeaturePages,
} from "../../src/neurons/graph-feature-pages.ts";
import { writeGraphPage } from "../../src/viz/index.ts";
import { launchBrowser, openWatchedPage } from "../helpers/browser.ts";
import { demoFrontEndGraph, demoGraphTranscoders } from "../helpers/front-end-graph.ts";

let browser: Browser;
let dir: string;
before(async () => {
  dir = mkdtempSync(join(tmpdir(), "cs-feature-pages-"));
  browser = await launchBrowser();
});
after(async () => {
  await browser?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

test("one page per kept (layer, feature); clicking a feature node opens that feature's page", async () => {
  const model = await HookedTransformer.fromPretrained("stories260k");
  const set = demoGraphTranscoders(model.cfg);
  const graph = demoFrontEndGraph(3);
  const featureNodes = graph.nodes.filter((n) => n.feature_type === "cross layer transcoder");
  const distinct = new Set(featureNodes.map((n) => `L${n.layer}-F${n.feature}.html`));
  assert.ok(featureNodes.length > distinct.size, "some feature is kept at two positions: one page for both");
  assert.equal(graphFeatures(graph).length, distinct.size);

  const pagesDir = join(dir, "pages");
  const html = join(dir, "graph.html");
  await writeGraphFeaturePages(pagesDir, model, set, graph, {
    index: null,
    setName: "random-set",
    modelName: "stories260k",
    flag: "--feature-pages",
  });
  assert.deepEqual(
    readdirSync(pagesDir)
      .filter((f) => f.endsWith(".html"))
      .sort(),
    [...distinct].sort(),
  );
  writeGraphPage(html, graph, { model: "stories260k", featureUrl: featurePagesUrl(html, pagesDir) });

  const w = await openWatchedPage(browser, { width: 1400, height: 1000 });
  try {
    await w.page.goto(pathToFileURL(html).href);
    await w.page.waitForSelector("body[data-cs-ready]", { timeout: 20000 });
    const node = featureNodes[featureNodes.length - 1] as FrontEndNode;
    const [popup] = await Promise.all([
      w.page.waitForEvent("popup"),
      w.page.click(`.cs-gnode[data-id="${node.node_id}"]`),
    ]);
    await popup.waitForLoadState();
    const url = new URL(popup.url());
    assert.ok(existsSync(url.pathname), `${url.pathname} exists`);
    assert.equal(await popup.title(), `Transcoder feature ${node.feature} of layer ${node.layer}`);
    await popup.close();
  } finally {
    await w.context.close();
  }
});
