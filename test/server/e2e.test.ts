/**
 * The explorer in headless chromium (test/helpers/browser.ts: a missing chromium fails with the fix).
 * Writes a screenshot to $SERVE_SCREENSHOT when set, for looking at the page.
 */
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import type { Browser, Page } from "playwright-core";
import type { ExplorerServer } from "../../src/server/app.ts";
import type { JobView } from "../../src/server/job-queue.ts";
import { ATTENTION_SCALE } from "../../src/viz/views/attention-svg.ts";
import { collectPageErrors, launchBrowser } from "../helpers/browser.ts";
import { loadFixtureModel, referenceJson } from "../helpers/reference.ts";
import { type FixtureServer, runFromAddress, startFixtureServer } from "./server-fixture.ts";

let server: ExplorerServer;
let base: string;
let withToken: FixtureServer["withToken"];
let browser: Browser;
const pageErrors: string[] = [];

const { clean, corrupted, answer, wrong } = referenceJson.prompts;

before(async () => {
  browser = await launchBrowser();
  ({ server, base, withToken } = await startFixtureServer());
});
after(async () => {
  await browser?.close();
  await server?.close();
});

async function newPage(): Promise<Page> {
  const page = await browser.newPage({ viewport: { width: 1400, height: 1000 } });
  collectPageErrors(page, pageErrors);
  return page;
}

test("type a prompt: tokens and predictions appear, the URL records it; a reload shows the same view", async () => {
  const page = await newPage();
  await page.goto(withToken(`${base}/`));
  await page.fill("#prompt", clean[0]);
  await page.fill("#answer", answer);
  await page.fill("#wrong", wrong);
  await page.fill("#head", "1.2");
  await page.click("#run-prompt");
  await page.waitForSelector("#predictions-out[data-ready] table.predictions");
  const tokens = await page.locator("#predictions-out .token-strip .tok").allTextContents();
  assert.equal(tokens.length, referenceJson.prompts.clean_tokens[0].length);
  assert.equal(tokens[1], "We");
  assert.equal(await page.locator("#predictions-out table.predictions tbody tr").count(), 10);
  await page.waitForSelector("#attribution-out[data-ready] svg");
  await page.waitForSelector("#attention-out[data-ready] .cs-attention");
  const url = new URL(page.url());
  assert.equal(url.searchParams.get("token"), null, "the token is kept out of the view's URL");
  assert.equal(url.searchParams.get("prompt"), clean[0]);
  assert.equal(url.searchParams.get("answer"), answer);
  assert.equal(url.searchParams.get("head"), "1.2");
  const before = await page.locator("#predictions-out").innerText();

  const again = await newPage();
  await again.goto(withToken(page.url()));
  await runFromAddress(again, "#run-prompt");
  await again.waitForSelector("#predictions-out[data-ready] table.predictions");
  assert.equal(await again.locator("#prompt").inputValue(), clean[0]);
  assert.equal(await again.locator("#predictions-out").innerText(), before);
  await again.waitForSelector("#attention-out[data-ready] .cs-attention");
  assert.match(await again.locator("#attention-out").innerText(), /L1H2/);
  await page.close();
  await again.close();
});

test("clicking a head cell of the attribution heatmap shows that head's attention", async () => {
  const page = await newPage();
  const q = new URLSearchParams({ prompt: clean[0], answer, wrong });
  await page.goto(withToken(`${base}/?${q}`));
  await runFromAddress(page, "#run-prompt");
  await page.waitForSelector("#attribution-out[data-ready]");
  // Vega labels each heatmap cell with its row and column.
  const heatmap = page.locator("#attribution-out .figure").nth(1);
  assert.equal(
    await heatmap.locator('path[aria-roledescription="rect mark"]').count(),
    12,
    "one cell per head",
  );
  await heatmap.locator('path[aria-label^="head: H3; layer: L2;"]').click();
  await page.waitForSelector("#attention-out[data-ready] .cs-attention");
  assert.equal(await page.locator("#head").inputValue(), "2.3");
  assert.equal(new URL(page.url()).searchParams.get("head"), "2.3");
  await page.close();
});

test("a patching job shows progress, then the heatmap; the URL reruns it", async () => {
  const page = await newPage();
  await page.goto(withToken(`${base}/?${new URLSearchParams({ answer, wrong })}`));
  await page.fill("#clean", clean[0]);
  await page.fill("#corrupted", corrupted[0]);
  await page.selectOption("#target", "resid_pre");
  // Record every status the panel shows, to see the job go through queued/running before done.
  await page.evaluate(() => {
    const out = document.getElementById("patching-out") as HTMLElement;
    const seen: string[] = [];
    (window as unknown as { seen: string[] }).seen = seen;
    new MutationObserver(() => {
      if (out.dataset.status && seen.at(-1) !== out.dataset.status) seen.push(out.dataset.status);
    }).observe(out, { attributes: true });
  });
  await page.click("#run-patching");
  await page.waitForSelector("#patching-out[data-ready] svg");
  const seen = await page.evaluate(() => (window as unknown as { seen: string[] }).seen);
  assert.equal(seen.at(-1), "done");
  assert.ok(
    seen.length >= 2 && ["queued", "running"].includes(seen[0]),
    `statuses shown: ${seen.join(" → ")}`,
  );
  assert.equal(
    await page.locator("#patching-out progress").evaluate((p) => (p as HTMLProgressElement).value),
    1,
  );
  assert.match(await page.locator("#patching-out .job-status").innerText(), /24 patched runs/);
  assert.match(await page.locator("#patching-out").innerText(), /resid_pre/);
  if (process.env.SERVE_SCREENSHOT) {
    await page.fill("#prompt", clean[0]);
    await page.fill("#head", "0.1");
    await page.fill("#neuron", "1.5");
    await page.click("#run-prompt");
    await page.waitForSelector("#attention-out[data-ready]");
    await page.click("#show-neuron");
    await page.waitForSelector("#neuron-out[data-ready]");
    await page.screenshot({ path: process.env.SERVE_SCREENSHOT, fullPage: true });
  }
  const reloaded = await newPage();
  await reloaded.goto(withToken(page.url()));
  await runFromAddress(reloaded, "#run-patching");
  await reloaded.waitForSelector("#patching-out[data-ready] svg");
  assert.equal(await reloaded.locator("#corrupted").inputValue(), corrupted[0]);
  assert.equal(await reloaded.locator("#target").inputValue(), "resid_pre");
  await page.close();
  await reloaded.close();
});

test("an over-long prompt shows a clear error naming the context size", async () => {
  const page = await newPage();
  await page.goto(withToken(`${base}/`));
  await page.fill("#prompt", " the".repeat(80));
  await page.click("#run-prompt");
  const error = page.locator("#predictions-out .error");
  await error.waitFor();
  const text = await error.innerText();
  assert.match(text, /81 tokens/);
  assert.match(text, /context is 64 tokens/);
  assert.match(text, /Shorten the prompt to at most 63 tokens/);
  await page.close();
});

test("the session token: taken from the URL, kept for reloads, required by the API", async () => {
  const page = await newPage();
  const apiTokens: (string | undefined)[] = [];
  page.on("request", (r) => {
    if (new URL(r.url()).pathname.startsWith("/api/")) apiTokens.push(r.headers()["x-circuitscope-token"]);
  });
  await page.goto(withToken(`${base}/?prompt=Hello`));
  await runFromAddress(page, "#run-prompt");
  await page.waitForSelector("#predictions-out[data-ready]");
  assert.equal(new URL(page.url()).searchParams.get("token"), null, "token removed from the address bar");
  assert.equal(new URL(page.url()).searchParams.get("prompt"), "Hello");
  // A reload (address without the token) still works: the tab kept the token.
  await page.reload();
  await runFromAddress(page, "#run-prompt");
  await page.waitForSelector("#predictions-out[data-ready]");
  assert.ok(apiTokens.length >= 4, `${apiTokens.length} API requests`);
  assert.ok(
    apiTokens.every((t) => t === server.token),
    "every API request carried the session token header",
  );
  await page.close();
  // A browser that never saw the token (a shared link without it) is refused with the fix.
  const stranger = await newPage();
  await stranger.goto(`${base}/?prompt=Hello`);
  const error = stranger.locator("#page-error .error");
  await error.waitFor();
  assert.match(await error.innerText(), /session token.*\?token=/s);
  await stranger.close();
});

/** What the attention panel shows: each thumbnail's grid place, label and pixels, and the opened head. */
async function readAttentionPanel(page: Page) {
  return page.$eval("#attention-out", (out) => ({
    thumbs: [...out.querySelectorAll<HTMLButtonElement>(".cs-head-grid button")].map((b) => {
      const canvas = b.querySelector("canvas") as HTMLCanvasElement;
      const n = canvas.width;
      const rgba = canvas.getContext("2d")?.getImageData(0, 0, n, n).data ?? [];
      return {
        row: Number(b.style.gridRow),
        col: Number(b.style.gridColumn),
        label: b.title,
        selected: b.getAttribute("aria-selected") === "true",
        // the label's text and background colours, as drawn (the page's own button style must not hide it)
        ink: [getComputedStyle(b).color, getComputedStyle(b).backgroundColor],
        // pixel (src, dest) is at (x, y): rows of the image are destinations
        pixels: Array.from({ length: n * n }, (_, k) => [...rgba].slice(4 * k, 4 * k + 3)),
      };
    }),
    openTitle: out.querySelector(".cs-grid-host svg text")?.textContent ?? "",
    openCells: [...out.querySelectorAll<SVGRectElement>(".cs-grid-host .cs-cell")].map((c) => ({
      dest: Number(c.dataset.dest),
      src: Number(c.dataset.src),
      value: Number(c.dataset.value),
    })),
  }));
}

test("attention at a glance: a layer x head thumbnail grid of the real patterns; a click opens that head and goes into the URL", async () => {
  const model = loadFixtureModel({ backend: "reference" });
  const { nLayers, nHeads } = model.cfg;
  const names = Array.from({ length: nLayers }, (_, l) => `blocks.${l}.attn.hook_pattern`);
  const { cache } = model.runWithCache(clean[0], { namesFilter: names });
  const n = referenceJson.prompts.clean_tokens[0].length;
  const weight = (layer: number, head: number, d: number, s: number) =>
    cache.get(`blocks.${layer}.attn.hook_pattern`).data[(head * n + d) * n + s];
  const rgb = (v: number) => {
    const h = ATTENTION_SCALE.color(v);
    return [1, 3, 5].map((i) => Number.parseInt(h.slice(i, i + 2), 16));
  };

  const page = await newPage();
  await page.goto(withToken(`${base}/?${new URLSearchParams({ prompt: clean[0], head: "1.2" })}`));
  await runFromAddress(page, "#run-prompt");
  await page.waitForSelector("#attention-out[data-ready] .cs-head-grid");
  const shown = await readAttentionPanel(page);
  assert.equal(shown.thumbs.length, nLayers * nHeads, "one thumbnail per head");
  // Row r, column c of the grid is layer r-1, head c-1: its label and its pixels (independent of labels).
  const places = new Set<string>();
  for (const t of shown.thumbs) {
    const [layer, head] = [t.row - 1, t.col - 1];
    places.add(`${layer}.${head}`);
    assert.equal(t.label, `L${layer}H${head}`, `grid row ${t.row}, column ${t.col}`);
    assert.equal(t.pixels.length, n * n);
    t.pixels.forEach((px, k) => {
      const want = rgb(weight(layer, head, Math.floor(k / n), k % n));
      assert.ok(
        px.every((c, i) => Math.abs(c - want[i]) <= 1),
        `${t.label} pixel ${k}: ${px} vs ${want}`,
      );
    });
  }
  assert.equal(places.size, nLayers * nHeads, "every (layer, head) has its own place");
  const luminance = (css: string) => {
    const [r, g, b] = (css.match(/\d+/g) ?? []).map(Number);
    return 0.299 * r + 0.587 * g + 0.114 * b;
  };
  for (const t of shown.thumbs) {
    const [text, background] = t.ink.map(luminance);
    assert.ok(Math.abs(text - background) > 100, `${t.label}'s label is legible: ${t.ink.join(" on ")}`);
  }
  assert.equal(shown.openTitle, "L1H2", "the URL's head is opened");
  assert.deepEqual(
    shown.thumbs.filter((t) => t.selected).map((t) => t.label),
    ["L1H2"],
  );

  // Click the thumbnail in the last row, second column: layer nLayers-1, head 1.
  const k = shown.thumbs.findIndex((t) => t.row === nLayers && t.col === 2);
  await page.locator("#attention-out .cs-head-grid button").nth(k).click();
  const opened = await readAttentionPanel(page);
  const [layer, head] = [nLayers - 1, 1];
  assert.equal(opened.openTitle, `L${layer}H${head}`);
  assert.equal(opened.openCells.length, n * n);
  for (const c of opened.openCells)
    assert.ok(Math.abs(c.value - weight(layer, head, c.dest, c.src)) < 1e-4, `cell ${c.dest},${c.src}`);
  assert.equal(await page.locator("#head").inputValue(), `${layer}.${head}`);
  assert.equal(new URL(page.url()).searchParams.get("head"), `${layer}.${head}`);

  // The link reopens that head.
  const again = await newPage();
  await again.goto(withToken(page.url()));
  await runFromAddress(again, "#run-prompt");
  await again.waitForSelector("#attention-out[data-ready] .cs-head-grid");
  assert.equal((await readAttentionPanel(again)).openTitle, `L${layer}H${head}`);
  await page.close();
  await again.close();
});

test("when the server refuses the all-heads grid (a prompt past its bound), the panel shows the one head asked for and says why", async () => {
  const page = await newPage();
  const refusal = "Every head's pattern for a 90-token prompt is more than the 1048576 one answer may hold.";
  // The fixture's context (64 tokens) never reaches the bound, so the refusal is the server's, replayed.
  await page.route("**/api/attention", (route) =>
    (route.request().postDataJSON() as { heads?: string }).heads === "all"
      ? route.fulfill({ status: 400, contentType: "application/json", json: { error: { message: refusal } } })
      : route.continue(),
  );
  await page.goto(withToken(`${base}/?${new URLSearchParams({ prompt: clean[0], head: "2.3" })}`));
  await runFromAddress(page, "#run-prompt");
  await page.waitForSelector("#attention-out[data-ready] .cs-attention");
  const shown = await readAttentionPanel(page);
  assert.equal(shown.thumbs.length, 0, "no grid");
  assert.equal(shown.openTitle, "L2H3");
  assert.match(
    await page.locator("#attention-out .caption").innerText(),
    /No all-heads grid: Every head's pattern/,
  );
  await page.close();
});

test("an address fills the form but runs nothing until a click; no other page can frame the explorer", async () => {
  const startedAt = Date.now();
  const runs: string[] = [];
  const onUpdate = (v: JobView) => {
    if (Date.parse(v.createdAt) >= startedAt) runs.push(v.kind);
  };
  server.queue.events.on("update", onUpdate);
  try {
    const page = await newPage();
    const calls: string[] = [];
    page.on("request", (r) => {
      const path = new URL(r.url()).pathname;
      if (path.startsWith("/api/")) calls.push(path);
    });
    const q = new URLSearchParams({ prompt: clean[0], answer, wrong, neuron: "0.1", head: "1.2" });
    await page.goto(withToken(`${base}/?${q}`));
    await page.waitForSelector("body[data-ready]");
    assert.equal(await page.locator("#prompt").inputValue(), clean[0], "the address filled the form");
    assert.equal(await page.locator("#neuron").inputValue(), "0.1");
    assert.match(await page.locator("#page-note").innerText(), /press Run/);
    assert.deepEqual(calls, ["/api/info"], "only the page's own set-up call");
    assert.equal(runs.length, 0, `no model run started from the address: ${runs.join(", ")}`);
    await page.click("#run-prompt");
    await page.waitForSelector("#predictions-out[data-ready] table.predictions");
    await page.waitForSelector("#attention-out[data-ready] .cs-attention"); // the click's last run
    assert.ok(runs.includes("predict"), `runs after the click: ${runs.join(", ")}`);
    await page.close();

    // Another site's page framing the explorer: the browser refuses to render it, so nothing in it can be clicked.
    runs.length = 0;
    const framer = await browser.newPage(); // its refusal is logged as a console error on purpose: not collected
    await framer.setContent(`<iframe id="x" src="${withToken(`${base}/?prompt=Hello`)}"></iframe>`);
    const frame = framer.frames().find((f) => f !== framer.mainFrame());
    assert.ok(frame);
    await frame.waitForLoadState();
    assert.ok(!frame.url().startsWith(base), `the frame shows ${frame.url()}, not the explorer`);
    assert.equal(await frame.locator("#prompt").count(), 0, "no explorer form inside the frame");
    assert.equal(runs.length, 0, `runs from the framed page: ${runs.join(", ")}`);
    await framer.close();
  } finally {
    server.queue.events.off("update", onUpdate);
  }
});

test("no page errors along the way (besides the deliberately rejected over-long prompt and token-less page)", () => {
  const unexpected = pageErrors.filter(
    (e) => !/status of (400 \(Bad Request\)|401 \(Unauthorized\))/.test(e),
  );
  assert.deepEqual(unexpected, []);
});

// The explorer's figures at 1100 px and 1600 px (issue #17 points 5, 7, 9). The patching pair is long
// enough (about 20 positions) that a fixed-size heatmap would overflow a half-width panel.
const longClean =
  "In the morning the children walked to the old school, and we're helping our friend while they";
const longCorrupted =
  "In the morning the children walked to the old school, and we are helping our friend while they";

for (const width of [1100, 1600]) {
  test(`explorer patching heatmap fits its panel at ${width} px, legend and final positions visible`, async () => {
    const page = await browser.newPage({ viewport: { width, height: 1000 } });
    collectPageErrors(page, pageErrors);
    const q = new URLSearchParams({
      answer,
      wrong,
      clean: longClean,
      corrupted: longCorrupted,
      target: "resid_pre",
    });
    await page.goto(withToken(`${base}/?${q}`));
    await runFromAddress(page, "#run-patching");
    await page.waitForSelector("#patching-out[data-ready] svg", { timeout: 120_000 });
    const m = await page.$eval("#patching-panel", (panel) => {
      const box = panel.getBoundingClientRect();
      const svg = panel.querySelector("#patching-out svg")!;
      const legend = svg.querySelector(".role-legend")!.getBoundingClientRect();
      const labels = [...svg.querySelectorAll(".role-axis-label text")].map((t) => ({
        text: t.textContent ?? "",
        right: t.getBoundingClientRect().right,
      }));
      return {
        scroll: panel.scrollWidth - panel.clientWidth,
        pageScroll: document.documentElement.scrollWidth - document.documentElement.clientWidth,
        right: box.right,
        legendRight: legend.right,
        svgWidth: svg.getBoundingClientRect().width,
        panelWidth: box.width,
        labels,
        text: (panel as HTMLElement).innerText,
      };
    });
    assert.ok(m.scroll <= 0, `panel scrolls horizontally by ${m.scroll}px`);
    assert.ok(m.pageScroll <= 0, `page scrolls horizontally by ${m.pageScroll}px`);
    assert.ok(m.legendRight <= m.right, `legend ends at ${m.legendRight}, panel at ${m.right}`);
    const last = m.labels.find((l) => /they$/.test(l.text));
    assert.ok(last, `final position labelled: ${m.labels.map((l) => l.text).join(" | ")}`);
    assert.ok(last.right <= m.right, "final position label inside the panel");
    assert.ok(m.svgWidth > 0.6 * m.panelWidth, `heatmap uses ${m.svgWidth}px of ${m.panelWidth}px`);
    // The panel states its inputs and labels the changed position with both tokens.
    assert.ok(m.text.includes(longClean) && m.text.includes(longCorrupted), "both prompts named");
    assert.match(m.text, /wrong token\s+·are/);
    assert.ok(
      m.labels.some((l) => /'re \/ ·are$/.test(l.text)),
      "changed position names clean and corrupted tokens",
    );
    assert.equal(await page.locator("#wrong-preview").innerText(), "token: ·are");
    await page.close();
  });
}
