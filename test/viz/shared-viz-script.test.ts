/**
 * Pages written as a set into one directory (`graph --feature-pages DIR`, a study's report) load the viz
 * bundle from one shared `circuitscope-viz.<hash>.js` instead of inlining it each: in headless chromium, pages
 * of such a directory draw from file:// (and a graph page under its strict CSP, over http too); sizes are read
 * from the files and compared with the bundle's own; a single `--html` file still inlines it.
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";
import { after, before, test } from "node:test";
import { pathToFileURL } from "node:url";
import type { Browser } from "playwright-core";
import type { TranscoderSet } from "../../src/graphs/transcoder-set.ts";
import { HookedTransformer } from "../../src/model/hooked-transformer.ts";
import { transcoderFeaturePageData } from "../../src/neurons/feature-page.ts";
import { writeFeatureReport } from "../../src/neurons/feature-report.ts";
import { graphFeatures, writeGraphFeaturePages } from "../../src/neurons/graph-feature-pages.ts";
import { REPORT_MARKER } from "../../src/util/report-dir.ts";
import {
  graphPageCsp,
  SHARED_VIZ_PREFIX,
  sharedVizFileName,
  writeGraphPage,
  writeSharedVizScript,
} from "../../src/viz/index.ts";
import { collectPageErrors, launchBrowser, openWatchedPage, type WatchedPage } from "../helpers/browser.ts";
import { demoFrontEndGraph, demoGraphTranscoders } from "../helpers/front-end-graph.ts";

const GRAPH = demoFrontEndGraph(3);
const BUNDLE_NAME = /^circuitscope-viz\.([0-9a-f]{16})\.js$/;
let browser: Browser;
let dir: string;
let model: HookedTransformer;
let set: TranscoderSet;
let pagesDir: string;

const writePages = (overwrite = false) =>
  writeGraphFeaturePages(pagesDir, model, set, GRAPH, {
    index: null,
    setName: "random-set",
    modelName: "stories260k",
    flag: "--feature-pages",
    overwrite,
  });

before(async () => {
  dir = mkdtempSync(join(tmpdir(), "cs-shared-viz-"));
  model = await HookedTransformer.fromPretrained("stories260k");
  set = demoGraphTranscoders(model.cfg);
  pagesDir = join(dir, "pages");
  await writePages();
  browser = await launchBrowser();
});
after(async () => {
  await browser?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/** The one bundle file in `d` (asserting there is exactly one), its size and its name's hash. */
function bundleIn(d: string): { name: string; bytes: number; hash: string } {
  const bundles = readdirSync(d).filter((f) => f.startsWith(SHARED_VIZ_PREFIX));
  assert.equal(bundles.length, 1, `one bundle file in ${d}: ${bundles.join(", ")}`);
  const name = bundles[0] as string;
  const m = BUNDLE_NAME.exec(name);
  assert.ok(m, `bundle file name ${name}`);
  return { name, bytes: statSync(join(d, name)).size, hash: m[1] as string };
}

/** A page in a context that may reach `origin` (a local server) and records every request it makes. */
async function openServedPage(origin: string): Promise<WatchedPage> {
  const context = await browser.newContext({ viewport: { width: 1200, height: 900 } });
  const page = await context.newPage();
  const errors: string[] = [];
  collectPageErrors(page, errors);
  const networkAttempts: string[] = [];
  page.on("request", (req) => {
    if (!req.url().startsWith(`${origin}/`)) networkAttempts.push(req.url());
  });
  return { context, page, errors, networkAttempts };
}

/**
 * Opens `url` (file: offline; http: from its own server only) and waits until the page has drawn
 * (body[data-cs-ready]) or reported its first error, whichever comes first, so a page that cannot load its
 * script fails at once rather than by a timeout.
 */
async function openAndDraw(url: string): Promise<WatchedPage> {
  const w = url.startsWith("http:")
    ? await openServedPage(new URL(url).origin)
    : await openWatchedPage(browser, { width: 1200, height: 900 });
  const firstError = new Promise<void>((resolve) => {
    w.page.on("console", (m) => m.type() === "error" && resolve());
    w.page.on("pageerror", () => resolve());
  });
  await w.page.goto(url);
  await Promise.race([w.page.waitForSelector("body[data-cs-ready]", { timeout: 20000 }), firstError]);
  return w;
}

test("a set of pages holds one bundle file, named by its content's hash; every page is far smaller than it", async () => {
  const bundle = bundleIn(pagesDir);
  const bytes = readFileSync(join(pagesDir, bundle.name));
  assert.equal(createHash("sha256").update(bytes).digest("hex").slice(0, 16), bundle.hash);
  assert.equal(bundle.name, sharedVizFileName());
  assert.ok(bundle.bytes > 100_000, `the bundle is the viz bundle (${bundle.bytes} bytes)`);
  const pages = readdirSync(pagesDir).filter((f) => f.endsWith(".html"));
  assert.equal(pages.length, graphFeatures(GRAPH).length);
  for (const p of pages) {
    const size = statSync(join(pagesDir, p)).size;
    assert.ok(size < bundle.bytes / 20, `${p}: ${size} bytes, under 1/20 of the bundle's ${bundle.bytes}`);
  }
  // The bundle is listed as circuitscope's own, so a re-run with --overwrite replaces the set, still one bundle.
  const marker = JSON.parse(readFileSync(join(pagesDir, REPORT_MARKER), "utf8")) as { files: string[] };
  assert.ok(marker.files.includes(bundle.name));
  await writePages(true);
  assert.equal(bundleIn(pagesDir).name, bundle.name);
  await assert.rejects(
    writePages(true).then(() => writePages(false)),
    /add --overwrite/,
  );
});

test("two pages of the set open from file:// and draw their figures: no console error, no network", async () => {
  const pages = readdirSync(pagesDir)
    .filter((f) => f.endsWith(".html"))
    .sort()
    .slice(0, 2);
  assert.equal(pages.length, 2);
  for (const p of pages) {
    const w = await openAndDraw(pathToFileURL(join(pagesDir, p)).href);
    try {
      assert.deepEqual(w.errors, [], `${p}: console errors`);
      assert.deepEqual(w.networkAttempts, []);
      assert.equal(await w.page.getAttribute("body", "data-cs-ready"), "true", `${p} drew`);
      const drawn = await w.page.$$eval("figure.cs-figure [data-cs-figure] svg", (els) => els.length);
      assert.ok(drawn >= 1, `${p}: a figure is drawn (${drawn} svg)`);
      // The page states its inputs as before.
      assert.match(
        (await w.page.textContent("body")) ?? "",
        /Transcoder set random-set, layer \d+'s transcoder/,
      );
    } finally {
      await w.context.close();
    }
  }
});

/** A study-like directory: the bundle at its top, a graph page (with its CSP) one folder down. */
function writeStudyLike(): { root: string; graphPath: string; nonce: string } {
  const root = join(dir, "study");
  mkdirSync(join(root, "graph"), { recursive: true });
  const vizScriptFor = writeSharedVizScript(root);
  const graphPath = join(root, "graph", "graph.html");
  const vizScript = vizScriptFor(graphPath);
  writeGraphPage(graphPath, GRAPH, { model: "stories260k", vizScript });
  return { root, graphPath, nonce: vizScript.nonce };
}

test("a graph page under its CSP runs the shared bundle from ../ over file:// and http; a script without the nonce does not", async () => {
  const { root, graphPath, nonce } = writeStudyLike();
  const html = readFileSync(graphPath, "utf8");
  assert.doesNotMatch(
    html,
    /<script(?![^>]*\b(nonce=|type="application\/json"))/,
    "every script element but JSON data carries the nonce",
  );
  const csp = graphPageCsp({ src: "x", nonce });
  assert.match(csp, /^default-src 'none';/);
  assert.match(csp, new RegExp(`script-src 'nonce-${nonce}';`), "the nonce alone allows scripts");
  assert.ok(html.includes(`content="${csp}"`));

  const server: Server = createServer((req, res) => {
    try {
      const body = readFileSync(join(root, decodeURIComponent(new URL(req.url ?? "/", "http://x").pathname)));
      res.writeHead(200, { "content-type": req.url?.endsWith(".js") ? "text/javascript" : "text/html" });
      res.end(body);
    } catch {
      res.writeHead(404).end();
    }
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  try {
    const port = (server.address() as AddressInfo).port;
    const rel = relative(root, graphPath).split("\\").join("/");
    for (const url of [pathToFileURL(graphPath).href, `http://127.0.0.1:${port}/${rel}`]) {
      const w = await openAndDraw(url);
      try {
        assert.deepEqual(w.errors, [], `${url}: console errors`);
        const nodes = await w.page.$$eval(".cs-gnode", (els) => els.length);
        assert.equal(nodes, GRAPH.nodes.length, `${url}: every node drawn`);
        assert.deepEqual(w.networkAttempts, [], `${url}: no request beyond its own files`);
      } finally {
        await w.context.close();
      }
    }
  } finally {
    await new Promise((resolve) => server.close(resolve));
  }

  // The same page with an intruding script file and inline script, neither carrying the nonce: still drawn,
  // and neither ran.
  writeFileSync(join(root, "intruder.js"), "document.title = 'intruder ran';");
  const intruded = join(root, "graph", "intruded.html");
  writeFileSync(
    intruded,
    html.replace(
      "</body>",
      `<script src="../intruder.js"></script><script>document.title = 'inline ran';</script></body>`,
    ),
  );
  const w = await openAndDraw(pathToFileURL(intruded).href);
  try {
    await w.page.waitForSelector("body[data-cs-ready]", { timeout: 20000 });
    assert.equal(await w.page.title(), "Attribution graph: demo-3");
    assert.ok(
      w.errors.some((e) => /Content Security Policy/.test(e)),
      `the blocked scripts are reported: ${w.errors.join(" | ")}`,
    );
  } finally {
    await w.context.close();
  }
});

test("a single --html file still inlines the bundle: no external script", () => {
  const { bytes: bundleBytes } = bundleIn(pagesDir);
  const single = join(dir, "single.html");
  writeFeatureReport(
    single,
    transcoderFeaturePageData(model, set, 1, 100, { index: null, setName: "random-set" }),
  );
  const graphSingle = join(dir, "graph-single.html");
  writeGraphPage(graphSingle, GRAPH, { model: "stories260k" });
  for (const path of [single, graphSingle]) {
    const html = readFileSync(path, "utf8");
    assert.doesNotMatch(html, /<script[^>]*\ssrc=/, `${path}: no external script`);
    assert.ok(statSync(path).size > bundleBytes, `${path} holds the bundle`);
  }
});

test("the shared file is kept when it is circuitscope's, and another's file of that name is never overwritten", () => {
  const own = join(dir, "own");
  mkdirSync(own);
  writeSharedVizScript(own);
  const bundle = bundleIn(own);
  const before = readFileSync(join(own, bundle.name), "utf8");
  assert.equal(writeSharedVizScript(own)(join(own, "a", "p.html")).src, `../${bundle.name}`);
  assert.equal(readFileSync(join(own, bundle.name), "utf8"), before);

  const theirs = join(dir, "theirs");
  mkdirSync(theirs);
  writeFileSync(join(theirs, bundle.name), "the user's own file");
  assert.throws(
    () => writeSharedVizScript(theirs),
    /is not circuitscope's viz script.*nothing was overwritten/s,
  );
  assert.equal(readFileSync(join(theirs, bundle.name), "utf8"), "the user's own file");
});
