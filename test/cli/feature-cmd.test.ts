/** `feature` and `index --sae`: bad input refused before any model work, with the fix named. */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { writeSaeLensDir } from "../../src/sae/saelens-dir.ts";
import { runCli } from "../helpers/cli.ts";
import { randomSaeWeights, saeConfigFor } from "../helpers/random-sae.ts";

let dir: string;
before(async () => {
  dir = mkdtempSync(join(tmpdir(), "cs-feature-cmd-"));
  await writeSaeLensDir(join(dir, "sae"), {
    cfg: saeConfigFor({ architecture: "topk", dIn: 64, dSae: 32, hookName: "blocks.2.hook_resid_pre", k: 4 }),
    weights: randomSaeWeights({ architecture: "topk", dIn: 64, dSae: 32, seed: 1 }),
  });
});
after(() => rmSync(dir, { recursive: true, force: true }));

test("feature: a missing --sae, or a feature past d_sae, is refused naming the fix", async () => {
  const noSae = await runCli(["feature", "--model", "stories260k", "--feature", "3"], {}, dir);
  assert.notEqual(noSae.code, 0);
  assert.match(noSae.stderr, /Pass --sae DIR/);
  const far = await runCli(["feature", "--model", "stories260k", "--sae", "sae", "--feature", "32"], {}, dir);
  assert.notEqual(far.code, 0);
  assert.match(far.stderr, /features 0\.\.31/);
});

test("index --sae with --layers is refused; without an index the page still gives the logit effect", async () => {
  const both = await runCli(
    ["index", "--model", "stories260k", "--sae", "sae", "--layers", "1", "--corpus", "sotu", "--out", "x"],
    {},
    dir,
  );
  assert.notEqual(both.code, 0);
  assert.match(both.stderr, /leave out --layers/);
  const page = await runCli(
    ["feature", "--model", "stories260k", "--sae", "sae", "--feature", "4", "--json"],
    {},
    dir,
  );
  assert.equal(page.code, 0, page.stderr);
  const data = JSON.parse(page.stdout);
  assert.equal(data.index, null);
  assert.equal(data.hook, "blocks.2.hook_resid_pre");
  assert.equal(data.logitEffect.top.length, 10);
  // Sorted: the most promoted token's value is the largest shown.
  const values = data.logitEffect.top.map((t: { value: number }) => t.value);
  assert.deepEqual(
    values,
    [...values].sort((a: number, b: number) => b - a),
  );
});

test("feature --transcoders: a missing --layer, a layer or feature the set lacks are refused naming the fix", async () => {
  const set = join(process.cwd(), "models/stories260k-transcoders");
  const noLayer = await runCli(
    ["feature", "--model", "stories260k", "--transcoders", set, "--feature", "3"],
    {},
    dir,
  );
  assert.notEqual(noLayer.code, 0);
  assert.match(noLayer.stderr, /Pass --layer L/);
  const far = await runCli(
    ["feature", "--model", "stories260k", "--transcoders", set, "--layer", "9", "--feature", "3"],
    {},
    dir,
  );
  assert.notEqual(far.code, 0);
  assert.match(far.stderr, /Layer 9 has no transcoder/);
  const wide = await runCli(
    ["feature", "--model", "stories260k", "--transcoders", set, "--layer", "1", "--feature", "512"],
    {},
    dir,
  );
  assert.notEqual(wide.code, 0);
  assert.match(wide.stderr, /features 0\.\.511/);
  const both = await runCli(
    [
      "index",
      "--model",
      "stories260k",
      "--transcoders",
      set,
      "--layers",
      "1",
      "--corpus",
      "sotu",
      "--out",
      "x",
    ],
    {},
    dir,
  );
  assert.notEqual(both.code, 0);
  assert.match(both.stderr, /leave out --sae and --layers/);
});
