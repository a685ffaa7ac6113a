import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { XMLParser } from "fast-xml-parser";
import { runCli } from "../helpers/cli.ts";
import { FIXTURE_DIR } from "../helpers/fixture.ts";
import { loadFixtureModel } from "../helpers/reference.ts";

const out = mkdtempSync(join(tmpdir(), "cs-attention-"));
after(() => rmSync(out, { recursive: true, force: true }));
const prompt = "We're helping our friend while they";

test("attention --json gives each head's pattern as the model computes it", async () => {
  const res = await runCli([
    "attention",
    "--model",
    FIXTURE_DIR,
    "--prompt",
    prompt,
    "--heads",
    "2.1,0.3",
    "--json",
  ]);
  assert.equal(res.code, 0, res.stderr);
  const json = JSON.parse(res.stdout);
  assert.equal(json.strTokens.length, 8);
  const { cache } = loadFixtureModel().runWithCache(prompt);
  for (const h of json.heads) {
    const p = cache.get("pattern", h.layer);
    for (let i = 0; i < 8; i++) {
      const row = h.pattern[i] as number[];
      assert.ok(Math.abs(row.reduce((a, b) => a + b, 0) - 1) < 1e-5);
      for (let j = 0; j < 8; j++) assert.ok(Math.abs(row[j] - p.at(0, h.head, i, j)) < 1e-6);
    }
  }
});

test("attention writes HTML and one valid SVG (+PNG) per head; bad heads exit non-zero", async () => {
  const html = join(out, "a.html");
  const res = await runCli([
    "attention",
    "--model",
    FIXTURE_DIR,
    "--prompt",
    prompt,
    "--heads",
    "1.2",
    "--html",
    html,
    "--svg-dir",
    out,
    "--png",
  ]);
  assert.equal(res.code, 0, res.stderr);
  assert.match(readFileSync(html, "utf8"), /L1H2/);
  const svg = readFileSync(join(out, "attention-L1H2.svg"), "utf8");
  const doc = new XMLParser({ ignoreAttributes: false }).parse(svg);
  assert.ok(doc.svg, "parses as an <svg> document");
  assert.ok(existsSync(join(out, "attention-L1H2.png")));
  const bad = await runCli(["attention", "--model", FIXTURE_DIR, "--prompt", prompt, "--heads", "9.0"]);
  assert.notEqual(bad.code, 0);
  assert.match(bad.stderr, /Head L9H0 does not exist/);
});
