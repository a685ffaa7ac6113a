/** The HTML report in real headless chromium: drawn figures, tooltips, hover highlighting, offline. */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { pathToFileURL } from "node:url";
import type { Browser } from "playwright-core";
import { formatValue } from "../../src/viz/color-scale.ts";
import {
  attentionView,
  barChart,
  displayToken,
  type Figure,
  heatmap,
  jsonForScript,
  lineChart,
  renderHtmlReport,
  scatterChart,
  tokenPositionLabels,
  tokenView,
  writeHtmlReport,
} from "../../src/viz/index.ts";
import { launchBrowser, openWatchedPage, type WatchedPage } from "../helpers/browser.ts";

const TOKENS = ["<|endoftext|>", "When", " the", "</script><!--", " &", " the", ' "x"'];
const N = TOKENS.length;
const LAYERS = ["L0", "L1", "L2"];
const HEAT = LAYERS.map((_, r) => TOKENS.map((_, c) => Math.round(Math.sin(r * 5 + c + 1) * 10000) / 10000));

function causal(seed: number): number[][] {
  return TOKENS.map((_, d) => {
    const row = TOKENS.map((_, s) => (s <= d ? Math.exp(2 * Math.cos(seed * 1.7 + d * 2 + s)) : 0));
    const z = row.reduce((a, b) => a + b, 0);
    return row.map((x) => x / z);
  });
}
const HEADS = [
  { label: "L0H0", pattern: causal(0) },
  { label: "L1H3", pattern: causal(1) },
];

const FIGS: Figure[] = [
  heatmap({ title: "patching", rowLabels: LAYERS, colLabels: tokenPositionLabels(TOKENS), values: HEAT }),
  lineChart({
    title: "ld",
    x: ["embed", ...LAYERS],
    series: [
      { name: "a", values: [0, 1, 2, 3] },
      { name: "b", values: [0, 0, 1, 1] },
    ],
  }),
  barChart({
    title: "bars",
    labels: ["L0H1", "L2H3", "L1H0"],
    values: [0.5, -0.2, 0.1],
    errors: [0.1, 0.1, 0.1],
  }),
  scatterChart({
    title: "sc",
    points: [1, 2, 3, 4, 5].map((i) => ({ x: i, y: i * 0.9, label: `p${i}` })),
    identityLine: true,
  }),
  attentionView({ title: "attention", tokens: TOKENS, heads: HEADS }),
  tokenView({
    title: "neuron",
    samples: [{ label: "one", tokens: TOKENS, values: [0, 1.5, -2, 0.25, 3.125, -0.5, 1] }],
    valueLabel: "act",
  }),
];

let browser: Browser;
let w: WatchedPage;
let dir: string;
let html: string;

before(async () => {
  dir = mkdtempSync(join(tmpdir(), "cs-report-"));
  const reportOpts = {
    title: "Report <&>",
    sections: [
      {
        heading: "Charts",
        text: "para one\n\npara <two>",
        figures: FIGS.slice(0, 4).map((figure) => ({ figure, caption: `cap ${figure.kind}` })),
      },
      { heading: "Views", figures: FIGS.slice(4).map((figure) => ({ figure })) },
    ],
  };
  html = renderHtmlReport(reportOpts);
  const path = join(dir, "report.html");
  writeHtmlReport(path, reportOpts);
  browser = await launchBrowser();
  w = await openWatchedPage(browser);
  await w.page.goto(pathToFileURL(path).href);
  await w.page.waitForSelector("body[data-cs-ready]", { timeout: 20000 });
});

after(async () => {
  await browser?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

const mount = (k: number) => `[data-cs-figure="${k}"]`;
const minusToHyphen = (s: string) => s.replace(/\u2212/g, "-");

test("figure JSON is embedded safely and round-trips; page text is escaped", async () => {
  assert.equal(html.match(/<\/script>/g)?.length, 3, "only the three real closing tags");
  assert.ok(!jsonForScript(FIGS).includes("<"));
  const embedded = await w.page.evaluate(() =>
    JSON.parse(document.getElementById("cs-figures")!.textContent!),
  );
  assert.deepEqual(embedded, JSON.parse(JSON.stringify(FIGS)));
  assert.equal(await w.page.title(), "Report <&>");
  assert.deepEqual(await w.page.$$eval("p", (ps) => ps.map((p) => p.textContent)), [
    "para one",
    "para <two>",
  ]);
  assert.deepEqual(await w.page.$$eval("figcaption", (fs) => fs.map((f) => f.textContent)), [
    "cap heatmap",
    "cap line",
    "cap bar",
    "cap scatter",
  ]);
});

test("every chart is drawn with the expected number of marks and the token labels", async () => {
  const count = (k: number, sel: string) => w.page.$$eval(`${mount(k)} ${sel}`, (els) => els.length);
  assert.equal(await count(0, "g.mark-rect.role-mark path"), LAYERS.length * N);
  const axis = await w.page.$$eval(`${mount(0)} g.role-axis-label text`, (ts) =>
    ts.map((t) => t.textContent),
  );
  for (const l of tokenPositionLabels(TOKENS)) assert.ok(axis.includes(l), `axis label ${l}`);
  assert.equal(await count(1, "g.mark-symbol.role-mark path"), 8);
  assert.equal(await count(2, "g.mark-rect.role-mark path"), 3);
  assert.equal(await count(2, "g.mark-rule.role-mark line"), 3);
  assert.equal(await count(3, "g.mark-symbol.role-mark path"), 5);
  assert.equal(await count(4, ".cs-cell"), N * N);
  assert.equal(await count(5, ".cs-token"), N);
});

test("hovering a heatmap cell shows its row, column and value in the tooltip", async () => {
  const cells = await w.page.$$(`${mount(0)} g.mark-rect.role-mark path`);
  // Vega draws the cells in data order: row-major over the non-null values.
  for (const [r, c] of [
    [0, 3],
    [2, 6],
  ]) {
    await cells[r * N + c].hover();
    const tip = w.page.locator("#vg-tooltip-element.visible");
    await tip.waitFor({ timeout: 5000 });
    const text = minusToHyphen((await tip.textContent()) ?? "");
    assert.ok(text.includes(formatValue(HEAT[r][c])), `tooltip "${text}" shows ${formatValue(HEAT[r][c])}`);
    assert.ok(text.includes(LAYERS[r]), `tooltip shows row ${LAYERS[r]}`);
    assert.ok(text.includes(tokenPositionLabels(TOKENS)[c]), "tooltip shows the column token");
    await w.page.mouse.move(0, 0);
  }
});

test("hovering a token in the attention view highlights its row and column with values", async () => {
  const att = mount(4);
  const i = 3;
  await w.page.hover(`${att} .cs-token-strip .cs-tok[data-index="${i}"]`);
  const state = await w.page.$$eval(`${att} .cs-cell`, (cells) =>
    cells.map((c) => ({
      d: Number((c as HTMLElement).dataset.dest),
      s: Number((c as HTMLElement).dataset.src),
      row: c.classList.contains("cs-row"),
      col: c.classList.contains("cs-col"),
      dim: c.classList.contains("cs-dim"),
    })),
  );
  for (const c of state) {
    assert.equal(c.row, c.d === i);
    assert.equal(c.col, c.s === i);
    assert.equal(c.dim, c.d !== i && c.s !== i);
  }
  // The strip shows row i: what token i attends to, in percent.
  const weights = await w.page.$$eval(`${att} .cs-token-strip .cs-w`, (s) => s.map((x) => x.textContent));
  assert.deepEqual(
    weights,
    HEADS[0].pattern[i].map((v) => `${Math.round(v * 100)}%`),
  );
  const best = HEADS[0].pattern[i].indexOf(Math.max(...HEADS[0].pattern[i]));
  const info = (await w.page.textContent(`${att} .cs-info`)) ?? "";
  assert.ok(
    info.includes(`${best}: ${displayToken(TOKENS[best])} ${formatValue(HEADS[0].pattern[i][best])}`),
    info,
  );

  // Hovering a source-axis label focuses the same token.
  await w.page.hover(`${att} .cs-label[data-axis="src"][data-index="1"]`);
  assert.equal(await w.page.$$eval(`${att} .cs-cell.cs-col`, (c) => c.length), N);
  assert.equal(await w.page.$$eval(`${att} .cs-cell.cs-col[data-src="1"]`, (c) => c.length), N);
});

test("choosing another head redraws the grid with that head's pattern", async () => {
  const att = mount(4);
  await w.page.click(`${att} .cs-head-tabs button:nth-child(2)`);
  assert.equal(
    await w.page.getAttribute(`${att} .cs-head-tabs button:nth-child(2)`, "aria-selected"),
    "true",
  );
  const values = await w.page.$$eval(`${att} .cs-cell`, (cells) =>
    cells.map((c) => [
      Number((c as HTMLElement).dataset.dest),
      Number((c as HTMLElement).dataset.src),
      Number((c as HTMLElement).dataset.value),
    ]),
  );
  assert.equal(values.length, N * N);
  for (const [d, s, v] of values) assert.equal(v, HEADS[1].pattern[d][s]);
});

test("hovering a token in the token view shows its exact value", async () => {
  await w.page.hover(`${mount(5)} .cs-token[data-index="4"]`);
  const tip = w.page.locator(`${mount(5)} .cs-tip`);
  await tip.waitFor({ state: "visible", timeout: 5000 });
  const text = (await tip.textContent()) ?? "";
  assert.ok(text.includes(`4: ${displayToken(" &")}`), text);
  assert.ok(text.includes("act = 3.125"), text);
});

test("no console errors and no network requests", () => {
  assert.deepEqual(w.errors, []);
  assert.deepEqual(w.networkAttempts, []);
});
