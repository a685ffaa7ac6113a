import assert from "node:assert/strict";
import { test } from "node:test";
import { runCli } from "../helpers/cli.ts";
import { FIXTURE_DIR } from "../helpers/fixture.ts";
import { loadFixtureModel } from "../helpers/reference.ts";

const model = loadFixtureModel();
const prompt = "The cat sat on the mat. The cat sat on the mat.";

test("heads --json: previous-token scores equal the attention mass on the previous token, by hand", async () => {
  const res = await runCli([
    "heads",
    "--model",
    FIXTURE_DIR,
    "--prompt",
    prompt,
    "--kind",
    "previous_token",
    "--json",
  ]);
  assert.equal(res.code, 0, res.stderr);
  const scores = JSON.parse(res.stdout).previous_token as number[][];
  assert.equal(scores.length, model.cfg.nLayers);
  const { cache } = model.runWithCache(prompt);
  const n = model.toTokens(prompt).length;
  for (const [l, h] of [
    [0, 0],
    [2, 3],
  ]) {
    // BOS excluded: mass on k = q-1 over mass on k >= 1, for queries q >= 1 (row 0 has only BOS).
    const p = cache.get("pattern", l);
    let hit = 0;
    let total = 0;
    for (let q = 1; q < n; q++)
      for (let k = 1; k <= q; k++) {
        total += p.at(0, h, q, k);
        if (k === q - 1) hit += p.at(0, h, q, k);
      }
    assert.ok(Math.abs(scores[l][h] - hit / total) < 1e-5, `L${l}H${h}`);
  }
  const bad = await runCli(["heads", "--model", FIXTURE_DIR, "--kind", "copying"]);
  assert.notEqual(bad.code, 0);
  assert.match(bad.stderr, /Unknown --kind "copying"/);
});

test("generate --json with temperature 0 is the greedy continuation", async () => {
  const res = await runCli([
    "generate",
    "--model",
    FIXTURE_DIR,
    "We're helping",
    "-n",
    "4",
    "-t",
    "0",
    "--json",
  ]);
  assert.equal(res.code, 0, res.stderr);
  const out = JSON.parse(res.stdout);
  // Greedy decoding by hand: a full forward pass over the growing sequence, argmax of the last logits
  // (no KV cache, no sampler).
  const tokens = model.toTokens("We're helping");
  const newTokens: number[] = [];
  for (let i = 0; i < 4; i++) {
    const logits = model.run([tokens]);
    const V = model.cfg.dVocab;
    const last = logits.data.subarray((tokens.length - 1) * V, tokens.length * V);
    let best = 0;
    for (let v = 1; v < V; v++) if (last[v] > last[best]) best = v;
    tokens.push(best);
    newTokens.push(best);
  }
  assert.deepEqual(out.newTokens, newTokens);
  assert.equal(out.text, model.toString(tokens)); // BOS, the prompt and the continuation
});
