/**
 * The explorer's SAE features in headless chromium (test/helpers/browser.ts), served with the bundled
 * stories260k SAE: the prediction view lists the most active features at the final position, feature
 * search by token and by the prompt's text lists features, and each opens its page (recorded in the URL).
 * What the page shows is checked against the SAE's encoder and decoder run here; without --sae the panel
 * is not shown.
 */
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import type { Browser, Page } from "playwright-core";
import { HookedTransformer } from "../../src/model/hooked-transformer.ts";
import { directionLogitEffect } from "../../src/neurons/neuron-page.ts";
import type { Sae } from "../../src/sae/sae.ts";
import { loadSaeLensDir } from "../../src/sae/saelens-dir.ts";
import { collectPageErrors, launchBrowser } from "../helpers/browser.ts";
import { type FixtureServer, runFromAddress, startFixtureServer } from "./server-fixture.ts";

const SAE_DIR = new URL("../../models/stories260k-saes/blocks.2.hook_resid_pre", import.meta.url).pathname;
const PROMPT = "Once upon a time, there was a little girl named Lily. She";

let model: HookedTransformer;
let sae: Sae;
let withSae: FixtureServer;
let plain: FixtureServer;
let browser: Browser;
const pageErrors: string[] = [];

before(async () => {
  model = await HookedTransformer.fromPretrained("stories260k", { backend: "reference" });
  sae = loadSaeLensDir(SAE_DIR, { kernels: model.kernels });
  [browser, withSae, plain] = await Promise.all([
    launchBrowser(),
    startFixtureServer({ sae: SAE_DIR }, "stories260k"),
    startFixtureServer({}, "stories260k"),
  ]);
});
after(async () => {
  await browser?.close();
  await Promise.all([withSae?.server.close(), plain?.server.close()]);
});

async function newPage(): Promise<Page> {
  const page = await browser.newPage({ viewport: { width: 1400, height: 1000 } });
  collectPageErrors(page, pageErrors);
  return page;
}

/** The features the page lists in `scope`, in order. */
async function listed(page: Page, scope: string): Promise<number[]> {
  return page
    .locator(`${scope} button.feature-link`)
    .evaluateAll((bs) => bs.map((b) => Number((b as HTMLElement).dataset.feature)));
}

test("the prediction view lists the final position's most active features; one opens its page, in the URL", async () => {
  const page = await newPage();
  await page.goto(withSae.withToken(`${withSae.base}/?${new URLSearchParams({ prompt: PROMPT })}`));
  await runFromAddress(page, "#run-prompt");
  await page.waitForSelector("#predictions-out button.feature-link");
  const tokens = model.toTokens(PROMPT);
  const x = model.runWithCache([tokens], { namesFilter: [sae.cfg.hookName] }).cache.get(sae.cfg.hookName);
  const post = sae.encode(x.data, tokens.length).post;
  const last = post.subarray((tokens.length - 1) * 512, tokens.length * 512);
  const want = [...last.keys()].filter((f) => last[f] > 0).sort((a, b) => last[b] - last[a] || a - b);
  assert.deepEqual(await listed(page, "#predictions-out"), want.slice(0, 10));

  await page.locator("#predictions-out button.feature-link").first().click();
  await page.waitForSelector("#feature-out[data-ready]");
  assert.equal(new URL(page.url()).searchParams.get("feature"), String(want[0]));
  const text = await page.locator("#feature-out").innerText();
  assert.match(text, new RegExp(`SAE feature ${want[0]}`));
  assert.match(text, /--feature-index/); // no index given: said, not drawn as empty
  assert.ok((await page.locator('#feature-out .figure[data-cs-kind="bar"]').count()) >= 2, "logit charts");
  await page.close();
});

test("search by token and by the prompt's text list the features the SAE gives", async () => {
  const page = await newPage();
  await page.goto(withSae.withToken(`${withSae.base}/`));
  await page.waitForSelector("body[data-ready]");
  assert.equal(await page.locator("#feature-panel").isVisible(), true);
  await page.fill("#feature-token", " she");
  await page.click("#search-token");
  await page.waitForSelector("#feature-search-out[data-ready]");
  const she = model.toSingleToken(" she");
  const effect = Array.from(
    { length: 512 },
    (_, f) =>
      directionLogitEffect(
        model,
        sae.W_dec.slice(f * 64, (f + 1) * 64).map((v) => v / sae.scalingFactor),
      )[she],
  );
  const byEffect = [...effect.keys()].sort((a, b) => effect[b] - effect[a] || a - b);
  assert.deepEqual(await listed(page, "#feature-search-out"), byEffect.slice(0, 10));

  await page.fill("#prompt", PROMPT);
  await page.click("#search-text");
  await page.waitForFunction(() =>
    document.querySelector("#feature-search-out h3")?.textContent?.includes("active on the text"),
  );
  await page.waitForSelector("#feature-search-out[data-ready]");
  assert.equal((await listed(page, "#feature-search-out")).length, 10);
  await page.close();
});

test("without --sae the feature panel is hidden and predictions list no features; no page errors", async () => {
  const page = await newPage();
  await page.goto(plain.withToken(`${plain.base}/?${new URLSearchParams({ prompt: PROMPT })}`));
  await runFromAddress(page, "#run-prompt");
  await page.waitForSelector("#predictions-out[data-ready]");
  assert.equal(await page.locator("#feature-panel").isVisible(), false);
  assert.equal(await page.locator("#predictions-out button.feature-link").count(), 0);
  await page.close();
  assert.deepEqual(pageErrors, []);
});
