/**
 * Direct logit attribution of SAE features: equal to the existing stack route (logitAttrs of the pieces
 * f_j · W_dec[j]) and to a float64 computation by hand for the strongest feature.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { featureLogitAttrs } from "../../src/analysis/feature-attribution.ts";
import { logitAttrs, logitDiffDirections } from "../../src/analysis/logit-attribution.ts";
import { selectPositions } from "../../src/analysis/positions.ts";
import { HookedTransformer } from "../../src/model/hooked-transformer.ts";
import { saeSplice } from "../../src/sae/attach.ts";
import { Sae } from "../../src/sae/sae.ts";
import { referenceKernels } from "../../src/tensor/reference-kernels.ts";
import { Tensor } from "../../src/tensor/tensor.ts";
import { randomSaeWeights, saeConfigFor } from "../helpers/random-sae.ts";

const PROMPTS = ["There was a little girl. One night,", "Tom and his dog went out to play. Then"];

for (const processing of [undefined, false] as const) {
  test(`feature DLA equals the stack route and a hand computation (${processing === false ? "unprocessed" : "processed"} weights)`, async () => {
    const model = await HookedTransformer.fromPretrained("stories260k", { backend: "reference", processing });
    const D = model.cfg.dModel;
    const dSae = 48;
    const hook = "blocks.3.hook_resid_post";
    const sae = new Sae({
      cfg: saeConfigFor({ architecture: "topk", dIn: D, dSae, hookName: hook, k: 6 }),
      weights: randomSaeWeights({ architecture: "topk", dIn: D, dSae, seed: 12, encScale: 0.3 }),
      kernels: referenceKernels,
    });
    const { cache } = model.runWithCache(PROMPTS, { splices: [saeSplice(sae, { useErrorTerm: true })] });
    const she = model.toSingleToken(" she");
    const he = model.toSingleToken(" he");
    const dirs = logitDiffDirections(model, she, he, PROMPTS.length);
    const attr = featureLogitAttrs(model, cache, sae, dirs);
    assert.equal(attr.labels.length, dSae);
    assert.equal(attr.nPos, 1);

    // The stack route: pieces f_j · W_dec[j] at each prompt's final position, through logitAttrs.
    const acts = cache.get(`${hook}.hook_sae_acts_post`);
    const P = acts.shape[1];
    const sel = selectPositions(cache.lengths, P, "final");
    const stack = new Float32Array(dSae * PROMPTS.length * D);
    for (let j = 0; j < dSae; j++)
      for (let b = 0; b < PROMPTS.length; b++) {
        const f = acts.data[(b * P + sel.positions[b]) * dSae + j];
        for (let d = 0; d < D; d++) stack[(j * PROMPTS.length + b) * D + d] = f * sae.W_dec[j * D + d];
      }
    const viaStack = logitAttrs(
      model,
      cache,
      { labels: attr.labels, stack: new Tensor(stack, [dSae, PROMPTS.length, 1, D]), sel },
      dirs,
    );
    for (let i = 0; i < attr.values.length; i++) {
      assert.ok(
        Math.abs(attr.values[i] - viaStack.values[i]) < 1e-4 * (1 + Math.abs(viaStack.values[i])),
        `value ${i}`,
      );
    }
    // By hand, float64, for the strongest feature of prompt 0.
    const j =
      [...attr.values.subarray(0, dSae * 2).keys()]
        .filter((i) => i % 2 === 0)
        .reduce((best, i) => (Math.abs(attr.values[i]) > Math.abs(attr.values[best]) ? i : best), 0) / 2;
    const p = cache.lengths[0] - 1;
    const f = acts.data[p * dSae + j];
    assert.ok(f > 0, "the strongest feature fires");
    const V = model.cfg.dVocab;
    const { W_U, lnFinal } = model.weights;
    const piece = Array.from({ length: D }, (_, d) => f * sae.W_dec[j * D + d]);
    const mean = model.cfg.normalization === "layernorm" ? piece.reduce((a, v) => a + v, 0) / D : 0;
    const scale = cache.get("ln_final.hook_scale").data[p];
    let expected = 0;
    for (let d = 0; d < D; d++) {
      const w = (W_U.data[d * V + she] - W_U.data[d * V + he]) * (lnFinal ? lnFinal.w.data[d] : 1);
      expected += ((piece[d] - mean) / scale) * w;
    }
    assert.ok(
      Math.abs(attr.values[j * 2] - expected) < 1e-4 * (1 + Math.abs(expected)),
      `${attr.values[j * 2]} vs ${expected}`,
    );
    assert.ok(Math.abs(expected) > 1e-3, "not vacuous");
  });
}

test("feature DLA refuses a cache without the SAE, and an SAE off the residual stream", async () => {
  const model = await HookedTransformer.fromPretrained("stories260k", { backend: "reference" });
  const D = model.cfg.dModel;
  const make = (hookName: string, dIn: number) =>
    new Sae({
      cfg: saeConfigFor({ architecture: "standard", dIn, dSae: 8, hookName }),
      weights: randomSaeWeights({ architecture: "standard", dIn, dSae: 8, seed: 1 }),
      kernels: referenceKernels,
    });
  const { cache } = model.runWithCache(PROMPTS[0]);
  const dirs = logitDiffDirections(model, 1, 2, 1);
  assert.throws(
    () => featureLogitAttrs(model, cache, make("blocks.1.hook_resid_pre", D), dirs),
    /run with the SAE spliced in/,
  );
  assert.throws(
    () => featureLogitAttrs(model, cache, make("blocks.1.mlp.hook_post", model.cfg.dMlp), dirs),
    /needs an SAE on the residual stream/,
  );
});
