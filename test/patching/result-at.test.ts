/**
 * Patching and attribution results read by axis name: `result.at({ layer, head })` is the cell the flat
 * arithmetic `values[l * H + h]` gives (and `[component, layer, head]`, `[prompt, ...]` likewise), and
 * the accessor stays out of JSON.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { activationPatching } from "../../src/patching/activation-patching.ts";
import { attributionPatching } from "../../src/patching/attribution-patching.ts";
import { loadFixtureModel } from "../helpers/reference.ts";

const model = loadFixtureModel();
const { nLayers: L, nHeads: H } = model.cfg;
const clean = ["We're helping our friend while they", "You're helping your mother while they"];
const corrupted = ["We are helping our friend while they", "You are helping your mother while they"];
const answers = { answer: model.toSingleToken("'re"), wrong: model.toSingleToken(" are") };

test("at({ layer, head }) on a head_z result is values[l * H + h]; with prompt, that prompt's own value", async () => {
  const r = await activationPatching(model, {
    clean,
    corrupted,
    answers,
    target: { kind: "head", component: "z" },
  });
  assert.deepEqual(r.axes, ["layer", "head"]);
  for (let l = 0; l < L; l++)
    for (let h = 0; h < H; h++) {
      assert.equal(r.at({ layer: l, head: h }), r.values[l * H + h]);
      for (let p = 0; p < clean.length; p++)
        assert.equal(r.at({ prompt: p, layer: l, head: h }), r.perPrompt.values[(p * L + l) * H + h]);
    }
  assert.throws(() => r.at({ layer: 0 }), /indexed by \{ layer, head \}.*missing head/);
  assert.throws(() => r.at({ layer: 0, head: 0, pos: 1 }), /no axis pos/);
  assert.throws(() => r.at({ layer: L, head: 0 }), /out of range/);
  const json = JSON.parse(JSON.stringify(r)) as Record<string, unknown>;
  assert.ok(!("at" in json), "JSON carries the data only");
  assert.ok(!Object.keys(r).includes("at"));
});

test("at({ component, layer, head }) on an attribution head_all estimate is values[(c * L + l) * H + h]", () => {
  const r = attributionPatching(model, { clean, corrupted, answers, target: { kind: "head_all" } });
  assert.deepEqual(r.axes, ["component", "layer", "head"]);
  for (let c = 0; c < r.shape[0]; c++)
    for (let l = 0; l < L; l++)
      for (let h = 0; h < H; h++)
        assert.equal(r.at({ component: c, layer: l, head: h }), r.values[(c * L + l) * H + h]);
});
