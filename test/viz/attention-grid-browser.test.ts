/** Attention at a glance (issue #17 point 11): all-heads thumbnails that open a head; masked positions left out. */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { pathToFileURL } from "node:url";
import type { Browser, Page } from "playwright-core";
import { attentionView, renderHtmlReport } from "../../src/viz/index.ts";
import { launchBrowser } from "../helpers/browser.ts";

const TOKENS = ["<|endoftext|>", "A", " b", " c", " d"];
const N = TOKENS.length;
/** Causal pattern where head k attends mostly to position max(0, d - k). */
function pattern(k: number): number[][] {
  return TOKENS.map((_, d) =>
    TOKENS.map((_, s) => {
      if (s > d) return 0;
      const row = d + 1;
      return s === Math.max(0, d - k) ? 0.6 + 0.4 / row : 0.4 / row;
    }),
  );
}
const HEADS = [0, 1].flatMap((l) =>
  [0, 1, 2].map((h) => ({ label: `L${l}H${h}`, pattern: pattern(l * 3 + h) })),
);

let browser: Browser;
let dir: string;
let page: Page;

before(async () => {
  browser = await launchBrowser();
  dir = mkdtempSync(join(tmpdir(), "cs-attn-grid-"));
  const path = join(dir, "a.html");
  const figure = attentionView({ title: "all heads", tokens: TOKENS, heads: HEADS });
  writeFileSync(path, renderHtmlReport({ title: "a", sections: [{ heading: "h", figures: [{ figure }] }] }));
  page = await browser.newPage({ viewport: { width: 1100, height: 900 } });
  await page.goto(pathToFileURL(path).href);
  await page.waitForSelector("body[data-cs-ready]");
});
after(async () => {
  await browser?.close();
  rmSync(dir, { recursive: true, force: true });
});

test("every head gets a thumbnail in a layer x head grid; clicking one opens that head", async () => {
  const thumbs = page.locator(".cs-head-grid button");
  assert.equal(await thumbs.count(), HEADS.length);
  assert.equal(await page.locator(".cs-head-grid button canvas.cs-thumb").count(), HEADS.length);
  const places = await thumbs.evaluateAll((bs) =>
    bs.map((b) => `${(b as HTMLElement).style.gridRow}/${(b as HTMLElement).style.gridColumn}`),
  );
  assert.deepEqual(places, ["1/1", "1/2", "1/3", "2/1", "2/2", "2/3"]);
  await thumbs.nth(4).click();
  assert.equal(await thumbs.nth(4).getAttribute("aria-selected"), "true");
  // The opened grid is head L1H1's: its cell values are that head's pattern.
  const v = await page.$eval('.cs-cell[data-dest="3"][data-src="2"]', (c) =>
    Number((c as HTMLElement).dataset.value),
  );
  assert.equal(v, HEADS[4].pattern[3][2]);
});

test("'attended to by' and 'attends to' leave out causally masked positions", async () => {
  await page.hover(`.cs-tok[data-index="${N - 1}"]`);
  const info = await page.locator(".cs-info").innerText();
  const [attends, attendedBy] = info.split("\n");
  // The last token is attended to only by itself: the masked (earlier) rows are no finding.
  assert.match(attendedBy, /^attended to by: 4: ·d [\d.]+$/);
  assert.equal((attends.match(/\d+: /g) ?? []).length, 4, "three sources listed (plus the token itself)");
  await page.hover('.cs-tok[data-index="0"]');
  const first = (await page.locator(".cs-info").innerText()).split("\n")[0];
  assert.match(first, /attends to: 0: <\|endoftext\|> 1$/, "position 0 can attend only to itself");
});
