/**
 * The explorer's figures in chromium at 1100 px and 1600 px (issue #17 points 5, 7, 9): the patching
 * heatmap fits its panel with its legend and last positions visible, the panel states its inputs, and the
 * answer/wrong boxes show the leading space they contain.
 */
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import type { Browser } from "playwright-core";
import type { ExplorerServer } from "../../src/server/app.ts";
import { collectPageErrors, launchBrowser } from "../helpers/browser.ts";
import { referenceJson } from "../helpers/reference.ts";
import { startFixtureServer } from "./server-fixture.ts";

let server: ExplorerServer;
let base: string;
let browser: Browser;
const pageErrors: string[] = [];

const { answer, wrong } = referenceJson.prompts;
// Long enough (about 20 positions) that a fixed-size heatmap would overflow a half-width panel.
const clean = "In the morning the children walked to the old school, and we're helping our friend while they";
const corrupted =
  "In the morning the children walked to the old school, and we are helping our friend while they";

before(async () => {
  browser = await launchBrowser();
  ({ server, base } = await startFixtureServer());
});
after(async () => {
  await browser?.close();
  await server?.close();
});

for (const width of [1100, 1600]) {
  test(`explorer patching heatmap fits its panel at ${width} px, legend and final positions visible`, async () => {
    const page = await browser.newPage({ viewport: { width, height: 1000 } });
    collectPageErrors(page, pageErrors);
    const q = new URLSearchParams({ answer, wrong, clean, corrupted, target: "resid_pre" });
    await page.goto(`${base}/?${q}`);
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
    assert.ok(m.text.includes(clean) && m.text.includes(corrupted), "both prompts named");
    assert.match(m.text, /wrong token\s+·are/);
    assert.ok(
      m.labels.some((l) => /'re \/ ·are$/.test(l.text)),
      "changed position names clean and corrupted tokens",
    );
    assert.equal(await page.locator("#wrong-preview").innerText(), "token: ·are");
    await page.close();
  });
}

test("the explorer page logged no errors", () => {
  assert.deepEqual(pageErrors, []);
});
