/**
 * Features as a patching unit: the exact values equal one full forward per cell with the SAE spliced in
 * and the feature set to its clean value (SAELens-style); attribution equals a finite-difference slope;
 * cells whose feature does not differ are 0 without a run.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { rowLogitDiff } from "../../src/analysis/answer-metrics.ts";
import { HookedTransformer } from "../../src/model/hooked-transformer.ts";
import { patchFeatures } from "../../src/patching/feature-patching.ts";
import { saeHookName, saeSplice } from "../../src/sae/attach.ts";
import { Sae } from "../../src/sae/sae.ts";
import { referenceKernels } from "../../src/tensor/reference-kernels.ts";
import type { Tensor } from "../../src/tensor/tensor.ts";
import { randomSaeWeights, saeConfigFor } from "../helpers/random-sae.ts";

const model = await HookedTransformer.fromPretrained("stories260k", { backend: "reference" });
const CLEAN = "There was a little girl. One night,";
const CORRUPTED = "There was a little boy. One night,";
const answer = model.toSingleToken(" she");
const wrong = model.toSingleToken(" he");
const D = model.cfg.dModel;

for (const hookName of ["blocks.2.hook_resid_pre", "blocks.3.hook_attn_out"]) {
  test(`${hookName}: exact feature patching equals a full spliced run per cell; attribution a finite difference`, () => {
    const dSae = 40;
    const sae = new Sae({
      cfg: saeConfigFor({ architecture: "topk", dIn: D, dSae, hookName, k: 5 }),
      weights: randomSaeWeights({ architecture: "topk", dIn: D, dSae, seed: 21, encScale: 0.4 }),
      kernels: referenceKernels,
    });
    const r = patchFeatures(model, { clean: CLEAN, corrupted: CORRUPTED, answer, wrong, sae, batchSize: 5 });
    const P = model.toTokens(CLEAN).length;
    assert.deepEqual(r.shape, [P, dSae]);
    const acts = saeHookName(sae, "hook_sae_acts_post");
    const splice = [saeSplice(sae, { useErrorTerm: true })];
    const fClean = model.runWithCache(CLEAN, { splices: splice, namesFilter: [acts] }).cache.get(acts).data;
    const fCorr = model
      .runWithCache(CORRUPTED, { splices: splice, namesFilter: [acts] })
      .cache.get(acts).data;
    const differing = [...fClean.keys()].filter((i) => fClean[i] !== fCorr[i]);
    assert.equal(r.cellsRun, differing.length);
    assert.ok(differing.length > 3, "some features differ");
    const last = (logits: Tensor) => rowLogitDiff(logits.data, answer, wrong);
    const span = r.clean - r.corrupted;
    // Every differing cell of the last two positions (the others take long with full runs).
    for (const i of differing.filter((c) => Math.floor(c / dSae) >= P - 2)) {
      const p = Math.floor(i / dSae);
      const f = i % dSae;
      const logits = model.run(CORRUPTED, {
        logits: "last",
        splices: splice,
        fwdHooks: [
          [
            acts,
            (a) => {
              a.data[p * dSae + f] = fClean[i];
            },
          ],
        ],
      });
      const expected = (last(logits) - r.corrupted) / span;
      assert.ok(Math.abs(r.exact![i] - expected) < 1e-4, `cell (${p}, ${f}): ${r.exact![i]} vs ${expected}`);
    }
    for (let i = 0; i < fClean.length; i++) {
      if (fClean[i] === fCorr[i]) {
        assert.equal(r.exact![i], 0);
        assert.equal(r.attribution![i], 0);
      }
    }
    // Attribution: the slope of the metric along the cell's decoder direction, by a finite difference.
    const top = differing.reduce((best, i) =>
      Math.abs(r.attribution![i]) > Math.abs(r.attribution![best]) ? i : best,
    );
    const p = Math.floor(top / dSae);
    const f = top % dSae;
    const eps = 1e-2;
    const nudged = model.run(CORRUPTED, {
      logits: "last",
      fwdHooks: [
        [
          hookName,
          (a) => {
            for (let d = 0; d < D; d++)
              a.data[p * D + d] += eps * (fClean[top] - fCorr[top]) * sae.W_dec[f * D + d];
          },
        ],
      ],
    });
    const slope = (last(nudged) - r.corrupted) / eps / span;
    assert.ok(
      Math.abs(r.attribution![top] - slope) < 0.02 * Math.abs(slope) + 1e-4,
      `${r.attribution![top]} vs ${slope}`,
    );
    assert.ok(Math.abs(slope) > 1e-3, "not vacuous");
  });
}
