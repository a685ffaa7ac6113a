/**
 * "Neurons of every layer" is an ordinary target: planned as [layer, neuron] sites, run by every
 * patching method the same way, its rows equal to the one-layer sweeps.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { activationPatching } from "../../src/patching/activation-patching.ts";
import { compareAttribution } from "../../src/patching/attribution-compare.ts";
import { attributionPatching } from "../../src/patching/attribution-patching.ts";
import { planTarget, targetFromName } from "../../src/patching/targets.ts";
import { loadFixtureModel, maxAbsDiff, referenceJson as R, referenceTensor } from "../helpers/reference.ts";

const model = loadFixtureModel();
const { nLayers: L, dMlp } = model.cfg;
const base = {
  clean: R.prompts.clean_tokens,
  corrupted: R.prompts.corrupted_tokens,
  answers: { answer: R.prompts.answer_token, wrong: R.prompts.wrong_token },
};

test("the plan: one site per [layer, neuron] on that layer's mlp.hook_post", () => {
  const target = targetFromName("neurons");
  assert.deepEqual(target, { kind: "neurons", layer: undefined, pos: undefined });
  const plan = planTarget(target, model.cfg, 8);
  assert.deepEqual(
    [plan.axes, plan.shape],
    [
      ["layer", "neuron"],
      [L, dMlp],
    ],
  );
  assert.equal(plan.sites.length, L * dMlp);
  assert.deepEqual(plan.sites[dMlp + 5], { hook: "blocks.1.mlp.hook_post", selectors: [[null, 5]] });
  const atPos = planTarget({ kind: "neurons", pos: 3 }, model.cfg, 8);
  assert.deepEqual(atPos.sites[2 * dMlp + 7].selectors, [[3, 7]]);
  assert.throws(() => planTarget({ kind: "neurons", layer: L }, model.cfg, 8), /--layer between 0 and 2/);
});

test("exact patching of every layer's neurons stacks the one-layer sweeps, and matches the fixture", async () => {
  const all = await activationPatching(model, { ...base, target: { kind: "neurons" } });
  assert.deepEqual(
    [all.axes, all.shape],
    [
      ["layer", "neuron"],
      [L, dMlp],
    ],
  );
  for (let l = 0; l < L; l++) {
    const one = await activationPatching(model, { ...base, target: { kind: "neurons", layer: l } });
    const row = all.values.subarray(l * dMlp, (l + 1) * dMlp);
    assert.ok(maxAbsDiff(Float32Array.from(row), Float32Array.from(one.values)) < 1e-9, `layer ${l}`);
    // Per prompt: [prompt, layer, neuron].
    for (let b = 0; b < 2; b++) {
      const per = all.perPrompt.values.subarray((b * L + l) * dMlp, (b * L + l + 1) * dMlp);
      const perOne = one.perPrompt.values.subarray(b * dMlp, (b + 1) * dMlp);
      assert.ok(
        maxAbsDiff(Float32Array.from(per), Float32Array.from(perOne)) < 1e-9,
        `layer ${l} prompt ${b}`,
      );
    }
  }
  const ref = referenceTensor("patch.neurons_layer2_all_pos").data;
  assert.ok(maxAbsDiff(Float32Array.from(all.values.subarray(2 * dMlp)), ref) < 1e-4);
});

test("attribution and compare take the same target: the fixture's attrpatch.neurons, exact beside it", async () => {
  const est = attributionPatching(model, { ...base, target: { kind: "neurons" } });
  assert.deepEqual(
    [est.axes, est.shape],
    [
      ["layer", "neuron"],
      [L, dMlp],
    ],
  );
  assert.ok(maxAbsDiff(Float32Array.from(est.values), referenceTensor("attrpatch.neurons").data) < 1e-4);
  const [cmp] = await compareAttribution(model, { ...base, targets: [{ kind: "neurons" }] });
  assert.equal(cmp.n, L * dMlp);
  assert.ok(
    maxAbsDiff(
      Float32Array.from(cmp.exact.values.subarray(2 * dMlp)),
      referenceTensor("patch.neurons_layer2_all_pos").data,
    ) < 1e-4,
  );
  assert.deepEqual(cmp.worst[0].index.length, 2);
});
