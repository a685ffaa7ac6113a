/**
 * The explorer's feature panel in headless chromium on a soft-capped Gemma 2 (final cap 3) and on GPT-2, each
 * served with a random SAE: feature search by token says its logit effects are pre-cap (heading, each item and
 * preCapNote's sentence) and the feature page it opens ends its logit-effect section with the sentence, on the
 * capped model only (the JSON behind it: test/viz/pre-cap-pages.test.ts).
 */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import type { Browser } from "playwright-core";
import { HookedTransformer } from "../../src/model/hooked-transformer.ts";
import { writeSaeLensDir } from "../../src/sae/saelens-dir.ts";
import { loadCheckpoint } from "../../src/weights/checkpoint.ts";
import { collectPageErrors, launchBrowser } from "../helpers/browser.ts";
import { makeGemma2Checkpoint } from "../helpers/gemma2-variants.ts";
import { randomSaeWeights, saeConfigFor } from "../helpers/random-sae.ts";
import { type FixtureServer, startFixtureServer } from "./server-fixture.ts";

const root = mkdtempSync(join(tmpdir(), "cs-pre-cap-e2e-"));
const NOTE =
  /soft-caps its logits \(cap · tanh\(logit \/ cap\), cap 3\): these are direct effects on the pre-cap logits/;
const MODELS = [
  { name: "soft-capped Gemma 2", dir: makeGemma2Checkpoint(root, 0).dir, capped: true },
  { name: "GPT-2", dir: "test/fixtures/tiny-gpt2", capped: false },
] as const;
const saeDir = join(root, "sae");

let browser: Browser;
const servers: FixtureServer[] = [];
const pageErrors: string[] = [];

before(async () => {
  await writeSaeLensDir(saeDir, {
    cfg: saeConfigFor({ architecture: "standard", dIn: 64, dSae: 16, hookName: "blocks.1.hook_resid_post" }),
    weights: randomSaeWeights({ architecture: "standard", dIn: 64, dSae: 16, seed: 5 }),
  });
  browser = await launchBrowser();
  for (const m of MODELS) servers.push(await startFixtureServer({ sae: saeDir }, m.dir));
});
after(async () => {
  await browser?.close();
  await Promise.all(servers.map((s) => s.server.close()));
  rmSync(root, { recursive: true, force: true });
});

for (const [i, m] of MODELS.entries()) {
  test(`${m.name}: feature search by token and the feature page ${m.capped ? "say" : "do not say"} the logit effects are pre-cap`, async () => {
    const fx = servers[i];
    const model = HookedTransformer.fromCheckpoint(loadCheckpoint(m.dir));
    const token = model.tokenizer.decode([7]); // one token of either vocabulary
    model.dispose();
    const page = await browser.newPage({ viewport: { width: 1400, height: 1000 } });
    try {
      collectPageErrors(page, pageErrors);
      await page.goto(fx.withToken(`${fx.base}/`));
      await page.waitForSelector("body[data-ready]");
      await page.fill("#feature-token", token);
      await page.click("#search-token");
      await page.waitForSelector("#feature-search-out[data-ready]");
      const list = await page.locator("#feature-search-out").innerText();
      assert.equal(NOTE.test(list), m.capped, list);
      assert.equal(/direct pre-cap logit effect/.test(list), m.capped, list);
      const items = await page.locator("#feature-search-out li").allInnerTexts();
      assert.equal(items.length, 10);
      for (const it of items) assert.equal(it.includes("pre-cap logit effect"), m.capped, it);

      await page.locator("#feature-search-out button.feature-link").first().click();
      await page.waitForSelector("#feature-out[data-ready]");
      const feature = await page.locator("#feature-out").innerText();
      assert.match(feature, /Direct effect on the logits/);
      assert.equal(NOTE.test(feature), m.capped, feature);
    } finally {
      await page.close();
    }
    assert.deepEqual(pageErrors, []);
  });
}
