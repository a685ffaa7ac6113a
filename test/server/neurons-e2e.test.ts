/**
 * The explorer's neuron panel in headless chromium (test/helpers/browser.ts), served with a small neuron
 * index: a `?neuron=L.N` link shows the top examples and the logit-effect charts, and a reload shows the
 * same. What the page draws is checked against the index read directly.
 */
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import type { Browser, Page } from "playwright-core";
import type { ExplorerServer } from "../../src/server/app.ts";
import { gpt2Tokenizer } from "../../src/tokenizer/tokenizer.ts";
import { collectPageErrors, launchBrowser } from "../helpers/browser.ts";
import { loadFixtureModel } from "../helpers/reference.ts";
import { buildFixtureIndex, type IndexFixture } from "./neuron-index-fixture.ts";
import { type FixtureServer, runFromAddress, startFixtureServer } from "./server-fixture.ts";

const LAYER = 2;
const NEURON = 7;

let fixture: IndexFixture;
let server: ExplorerServer;
let base: string;
let withToken: FixtureServer["withToken"];
let browser: Browser;
const pageErrors: string[] = [];

before(async () => {
  fixture = await buildFixtureIndex(loadFixtureModel({ backend: "reference" }));
  [browser, { server, base, withToken }] = await Promise.all([
    launchBrowser(),
    startFixtureServer({ neuronIndex: fixture.indexDir }),
  ]);
});
after(async () => {
  await browser?.close();
  await server?.close();
  fixture?.remove();
});

async function newPage(): Promise<Page> {
  const page = await browser.newPage({ viewport: { width: 1400, height: 1000 } });
  collectPageErrors(page, pageErrors);
  return page;
}

/** Per example shown in the token view: how many tokens, and the value at each. */
async function shownExamples(page: Page): Promise<number[][]> {
  return page
    .locator('#neuron-out .figure[data-cs-kind="tokens"]')
    .first()
    .evaluate((fig) => {
      const rows: number[][] = [];
      for (const g of fig.querySelectorAll<SVGGElement>("g.cs-token")) {
        const k = Number(g.dataset.sample);
        if (!rows[k]) rows[k] = [];
        rows[k].push(Number(g.dataset.value));
      }
      return rows;
    });
}

test("a ?neuron=L.N link shows the top examples and the logit-effect charts; a reload shows the same", async () => {
  const page = await newPage();
  await page.goto(withToken(`${base}/?neuron=${LAYER}.${NEURON}`));
  await runFromAddress(page, "#show-neuron");
  await page.waitForSelector("#neuron-out[data-ready]");
  assert.equal(await page.locator("#neuron").inputValue(), `${LAYER}.${NEURON}`);
  const text = await page.locator("#neuron-out").innerText();
  assert.match(text, new RegExp(`Neuron L${LAYER} N${NEURON}`));
  assert.match(text, /Top activating examples/);
  assert.doesNotMatch(text, /No neuron index loaded/);

  // The token view: one block per stored example, its max token where the index says, with its value.
  const summary = fixture.index.summary(LAYER, NEURON);
  const shown = await shownExamples(page);
  assert.equal(shown.length, summary.examples.length);
  for (const [k, e] of summary.examples.entries()) {
    const start = Math.max(0, e.position - 24);
    const end = Math.min(fixture.index.contextTokens(e.contextId).length, e.position + 9);
    assert.equal(shown[k].length, end - start, `example ${k}: tokens shown`);
    assert.ok(Math.abs(shown[k][e.position - start] - e.value) < 1e-4, `example ${k}: max value`);
  }

  // The logit effect: two horizontal bar charts of 10 tokens each, drawn by Vega as SVG.
  const charts = page.locator('#neuron-out .figure[data-cs-kind="bar"]');
  assert.ok((await charts.count()) >= 2);
  const effect = charts.filter({ hasText: "most promoted tokens" });
  await effect.locator("svg.marks").waitFor();
  assert.equal(await effect.locator('path[aria-roledescription="bar"]').count(), 10);
  assert.equal(
    await charts
      .filter({ hasText: "most suppressed tokens" })
      .locator('path[aria-roledescription="bar"]')
      .count(),
    10,
  );

  const again = await newPage();
  await again.goto(withToken(page.url()));
  await runFromAddress(again, "#show-neuron");
  await again.waitForSelector("#neuron-out[data-ready]");
  assert.equal(await again.locator("#neuron-out").innerText(), text);
  assert.deepEqual(await shownExamples(again), shown);
  await page.close();
  await again.close();
});

test("looking up a neuron records it in the URL; with a prompt the page adds its activations", async () => {
  const page = await newPage();
  await page.goto(withToken(`${base}/`));
  await page.fill("#prompt", "The miller counted the sacks.");
  await page.fill("#neuron", `${LAYER}.${NEURON}`);
  await page.click("#show-neuron");
  await page.waitForSelector("#neuron-out[data-ready]");
  const url = new URL(page.url());
  assert.equal(url.searchParams.get("neuron"), `${LAYER}.${NEURON}`);
  assert.match(await page.locator("#neuron-out").innerText(), /Activation on your text/);
  const ownText = page
    .locator('#neuron-out .figure[data-cs-kind="tokens"]')
    .filter({ hasText: "on your text" });
  // <|endoftext|> + "The miller counted the sacks." in GPT-2 tokens.
  const tokens = gpt2Tokenizer().toTokens("The miller counted the sacks.");
  assert.equal(await ownText.locator("g.cs-token").count(), tokens.length);
  await page.close();
});

test("an out-of-range neuron shows the server's message and fix; no other page errors", async () => {
  const page = await newPage();
  await page.goto(withToken(`${base}/?neuron=${LAYER}.9999`));
  await runFromAddress(page, "#show-neuron");
  const error = page.locator("#neuron-out .error");
  await error.waitFor();
  assert.match(await error.innerText(), /neuron 9999 does not exist.*256 neurons.*from 0 to 255/s);
  await page.close();
  const unexpected = pageErrors.filter((e) => !/status of 400 \(Bad Request\)/.test(e));
  assert.deepEqual(unexpected, []);
});
