/**
 * The explorer in headless chromium on the bundled Llama-architecture model (stories260k): its tokens,
 * predictions, attribution and attention render, and a patching job over key/value heads draws a
 * [layer, key/value head] heatmap.
 */
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import type { Browser } from "playwright-core";
import { collectPageErrors, launchBrowser } from "../helpers/browser.ts";
import { type FixtureServer, startFixtureServer } from "./server-fixture.ts";

let fixture: FixtureServer;
let browser: Browser;
const pageErrors: string[] = [];

before(async () => {
  browser = await launchBrowser();
  fixture = await startFixtureServer({}, "stories260k");
});
after(async () => {
  await browser?.close();
  await fixture?.server.close();
});

test("stories260k in the explorer: predictions, attribution, attention, and a head_v patching heatmap", async () => {
  const page = await browser.newPage({ viewport: { width: 1400, height: 1000 } });
  collectPageErrors(page, pageErrors);
  const q = new URLSearchParams({ answer: " she", wrong: " he" });
  await page.goto(fixture.withToken(`${fixture.base}/?${q}`));
  await page.fill("#prompt", "Lily was happy because");
  await page.fill("#head", "4.6");
  await page.click("#run-prompt");
  await page.waitForSelector("#predictions-out[data-ready] table.predictions");
  const tokens = await page.locator("#predictions-out .token-strip .tok").allTextContents();
  assert.equal(tokens.length, 9); // <s> Lily was happy be c a u se
  assert.match(await page.locator("#predictions-out table.predictions tbody tr").first().innerText(), /she/);
  await page.waitForSelector("#attribution-out[data-ready] svg");
  await page.waitForSelector("#attention-out[data-ready] .cs-attention");

  await page.fill("#clean", "Lily was happy because");
  await page.fill("#corrupted", "Tim was happy because");
  await page.selectOption("#target", "head_v");
  await page.click("#run-patching");
  await page.waitForSelector("#patching-out[data-ready] svg");
  const text = await page.locator("#patching-out").innerText();
  assert.match(text, /20 patched runs/); // 5 layers x 4 key/value heads
  const svg = await page.locator("#patching-out svg").first().innerHTML();
  for (const label of ["KV0", "KV3", "key/value head"])
    assert.ok(svg.includes(label), `heatmap shows ${label}`);
  assert.deepEqual(pageErrors, []);
});
