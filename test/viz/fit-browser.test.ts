/**
 * Figures size to their container (issue #17 point 5), in real chromium at 1100 px and 1600 px: no
 * horizontal scroll, legend inside the frame, the chart fills most of the width, heatmap cells square-ish.
 */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { pathToFileURL } from "node:url";
import type { Browser, Page } from "playwright-core";
import {
  barChart,
  heatmap,
  heatmapPanels,
  lineChart,
  renderHtmlReport,
  tokenPositionLabels,
} from "../../src/viz/index.ts";
import { launchBrowser } from "../helpers/browser.ts";

const TOKENS = Array.from({ length: 40 }, (_, i) => (i % 3 ? ` word${i}` : `tok${i}`));
const LAYERS = Array.from({ length: 12 }, (_, l) => `L${l}`);
const HEADS = Array.from({ length: 12 }, (_, h) => `H${h}`);
const wave = (r: number, c: number, k = 1) => Math.sin(r * 3 + c * 0.7) * k;

let browser: Browser;
let dir: string;
let url: string;

before(async () => {
  browser = await launchBrowser();
  dir = mkdtempSync(join(tmpdir(), "cs-fit-"));
  const figures = [
    heatmap({
      title: "40 positions",
      rowLabels: LAYERS,
      colLabels: tokenPositionLabels(TOKENS),
      // The last layer's final positions were not computed.
      values: LAYERS.map((_, r) => TOKENS.map((_, c) => (r === 11 && c >= 36 ? null : wave(r, c)))),
      rowTitle: "layer",
      colTitle: "position",
      valueTitle: "fraction restored",
    }),
    heatmapPanels({
      title: "five components",
      rowLabels: LAYERS,
      colLabels: HEADS,
      valueTitle: "fraction restored",
      panels: ["z", "q", "k", "v", "pattern"].map((t, k) => ({
        title: t,
        values: LAYERS.map((_, r) => HEADS.map((_, c) => wave(r, c, k + 1))),
      })),
    }),
    lineChart({
      title: "line",
      x: LAYERS,
      series: [{ name: "a", values: LAYERS.map((_, i) => i) }],
      yTitle: "y",
    }),
    barChart({ title: "bars", labels: HEADS, values: HEADS.map((_, i) => i - 5), valueTitle: "v" }),
  ];
  const path = join(dir, "fit.html");
  writeFileSync(
    path,
    renderHtmlReport({
      title: "fit",
      sections: [{ heading: "s", figures: figures.map((figure) => ({ figure })) }],
    }),
  );
  url = pathToFileURL(path).href;
});
after(async () => {
  await browser?.close();
  rmSync(dir, { recursive: true, force: true });
});

interface Fit {
  overflow: number;
  fill: number;
  legendInside: boolean;
}

/**
 * For each figure: how far its drawing overflows its frame (px, by scrolling or by sticking out), how much
 * of the frame's width it fills, and whether the legend is inside the frame.
 */
async function measure(page: Page): Promise<Fit[]> {
  return page.$$eval("figure.cs-figure", (frames) =>
    frames.map((frame) => {
      const body = frame.querySelector(".cs-figure-body")!;
      const box = body.getBoundingClientRect();
      const svg = body.querySelector("svg")!.getBoundingClientRect();
      const legend = body.querySelector(".role-legend")?.getBoundingClientRect();
      return {
        overflow: Math.max(body.scrollWidth - body.clientWidth, svg.right - box.right),
        fill: svg.width / box.width,
        legendInside: legend ? legend.right <= box.right + 0.5 : true,
      };
    }),
  );
}

for (const width of [1100, 1600]) {
  test(`report figures fit their frame at ${width} px: no horizontal scroll, legend visible, not small`, async () => {
    const page = await browser.newPage({ viewport: { width, height: 900 } });
    await page.goto(url);
    await page.waitForSelector("body[data-cs-ready]");
    const fits = await measure(page);
    const pageScroll = await page.evaluate(
      () => document.documentElement.scrollWidth - document.documentElement.clientWidth,
    );
    assert.ok(pageScroll <= 0, `the page scrolls sideways by ${pageScroll}px`);
    fits.forEach((f, k) => {
      assert.ok(f.overflow <= 0, `figure ${k} overflows by ${f.overflow}px`);
      assert.ok(f.legendInside, `figure ${k} legend is inside the frame`);
      assert.ok(f.fill > 0.6, `figure ${k} fills ${(f.fill * 100).toFixed(0)}% of its frame`);
    });
    // Heatmap cells stay square-ish (within 1.5x) after fitting.
    const ratio = await page.$eval('[data-cs-figure="0"]', (el) => {
      const cells = el.querySelectorAll('.layer_0_marks path[aria-roledescription="rect mark"]');
      const r = cells[0].getBoundingClientRect();
      return r.width / r.height;
    });
    assert.ok(ratio > 0.67 && ratio < 1.5, `cell aspect ${ratio}`);
    // In the browser too, not-computed cells are grey with a legend entry (not white, the colour of 0).
    const missing = await page.$eval('[data-cs-figure="0"]', (el) => ({
      fills: [...el.querySelectorAll('.layer_1_marks path[aria-roledescription="rect mark"]')].map((p) =>
        p.getAttribute("fill"),
      ),
      legend: [...el.querySelectorAll(".role-legend-label text")].map((t) => t.textContent),
    }));
    assert.deepEqual(missing.fills, ["#9e9e9e", "#9e9e9e", "#9e9e9e", "#9e9e9e"]);
    assert.ok(missing.legend.includes("not computed"), missing.legend.join(", "));
    await page.close();
  });
}
