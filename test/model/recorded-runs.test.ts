/** Recording one prompt's run and continuing copies of it (the interface fast patching drives the model through). */
import assert from "node:assert/strict";
import { test } from "node:test";
import { continueRun, recordRun } from "../../src/model/partial-runs.ts";
import { unembedRows } from "../../src/model/readout.ts";
import { loadFixtureModel, maxAbsDiff, referenceJson } from "../helpers/reference.ts";

const model = loadFixtureModel();
const { nLayers: L, dModel: D, dVocab: V } = model.cfg;
const tokens = referenceJson.prompts.corrupted_tokens[0]; // 8 tokens
const n = tokens.length;

test("continuing unedited copies from any block and position reproduces the recorded run", () => {
  const run = recordRun(model, tokens, { hooks: new Set(["blocks.1.mlp.hook_post"]), continuable: true });
  assert.deepEqual([...run.acts.keys()], ["blocks.1.mlp.hook_post"]);
  const { cache } = model.runWithCache([tokens], {
    namesFilter: ["ln_final.hook_normalized", "blocks.1.hook_resid_pre"],
  });
  const ref = cache.get("ln_final.hook_normalized").data.subarray((n - 1) * D, n * D);
  assert.ok(maxAbsDiff(run.finalNormalized, ref) < 1e-6);
  assert.equal(maxAbsDiff(run.residualEntering(1), cache.get("blocks.1.hook_resid_pre").data), 0);
  for (const [block, p0] of [
    [0, 0],
    [1, 3],
    [L, 5],
  ]) {
    const residual = new Float32Array(2 * (n - p0) * D);
    for (let c = 0; c < 2; c++) residual.set(run.residualEntering(block).subarray(p0 * D), c * (n - p0) * D);
    const out = continueRun(model, {
      run,
      copies: 2,
      fromPos: p0,
      from: { block, residual },
      hooks: [],
      finalPositionOnly: true,
    });
    assert.equal(out.length, 2 * D);
    for (let c = 0; c < 2; c++)
      assert.ok(maxAbsDiff(out.subarray(c * D, (c + 1) * D), ref) < 1e-5, `block ${block}, from ${p0}`);
  }
  const fromEmbed = continueRun(model, {
    run,
    copies: 1,
    fromPos: 2,
    from: { embed: Int32Array.from(tokens.slice(2)) },
    hooks: [],
    finalPositionOnly: false,
  });
  assert.ok(maxAbsDiff(fromEmbed, ref) < 1e-5);
  // Logits of the final normalised row equal the model's last-position logits.
  const logits = model.run([tokens], { logits: "last" }).data;
  assert.ok(maxAbsDiff(unembedRows(model, run.finalNormalized, 1), logits.subarray(0, V)) < 1e-4);
});

test("a run not recorded as continuable refuses to be continued", () => {
  const run = recordRun(model, tokens, { hooks: new Set(), continuable: false });
  assert.throws(() => run.residualEntering(0), /not recorded as continuable/);
});
