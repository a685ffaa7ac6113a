/**
 * SAE features are an ordinary patch target: planned as [pos, feature] sites on the SAE's
 * hook_sae_acts_post, the SAE spliced in with its error term. The fast exact path (decoder rows added
 * from the hook's block) equals the straightforward path (one full spliced run per cell, writing the clean
 * feature value); attribution equals a finite-difference slope, and exact patching where the model is
 * nearly linear.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { rowLogitDiff } from "../../src/analysis/answer-metrics.ts";
import { HookedTransformer } from "../../src/model/hooked-transformer.ts";
import { activationPatching } from "../../src/patching/activation-patching.ts";
import { attributionPatching } from "../../src/patching/attribution-patching.ts";
import { cellLabel } from "../../src/patching/result-format.ts";
import { planTarget, targetFromName } from "../../src/patching/targets.ts";
import { saeHookName, saeSplice } from "../../src/sae/attach.ts";
import { Sae } from "../../src/sae/sae.ts";
import { referenceKernels } from "../../src/tensor/reference-kernels.ts";
import { randomSaeWeights, saeConfigFor } from "../helpers/random-sae.ts";

const model = await HookedTransformer.fromPretrained("stories260k", { backend: "reference" });
const D = model.cfg.dModel;
// Pairs of different token lengths (16 and 13): each prompt's positions are its own.
const CLEAN = ["There was a little girl. One night,", "There was a little girl. One day,"];
const CORRUPTED = ["There was a little boy. One night,", "There was a little boy. One day,"];
const answers = { answer: model.toSingleToken(" she"), wrong: model.toSingleToken(" he") };

/** A random TopK SAE on `hookName`; a scaling factor ≠ 1 so that a lost 1/s shows. */
function randomSae(hookName: string, dSae = 24): Sae {
  return new Sae({
    cfg: saeConfigFor({ architecture: "topk", dIn: D, dSae, hookName, k: 5 }),
    weights: randomSaeWeights({ architecture: "topk", dIn: D, dSae, seed: 21, encScale: 0.4 }),
    kernels: referenceKernels,
    scalingFactor: 1.7,
  });
}

test("the plan: [pos, feature] sites on the SAE's hook_sae_acts_post; the SAE is required and must fit", () => {
  const sae = randomSae("blocks.2.hook_resid_pre");
  const plan = planTarget(targetFromName("features", { sae }), model.cfg, 9);
  assert.deepEqual([plan.target, plan.axes, plan.shape], ["features", ["pos", "feature"], [9, 24]]);
  assert.deepEqual(plan.sites[2 * 24 + 7], {
    hook: "blocks.2.hook_resid_pre.hook_sae_acts_post",
    selectors: [[2, 7]],
  });
  assert.equal(plan.sae, sae);
  assert.throws(() => targetFromName("features"), /--sae DIR/);
  const elsewhere = randomSae("blocks.9.hook_resid_pre");
  assert.throws(() => planTarget({ kind: "features", sae: elsewhere }, model.cfg, 9), /blocks\.9/);
});

for (const hookName of ["blocks.2.hook_resid_pre", "blocks.3.hook_attn_out"]) {
  test(`${hookName}: the fast exact path equals one full spliced run per cell, batch and per prompt`, async () => {
    const F = 16;
    const sae = randomSae(hookName, F);
    const opts = { clean: CLEAN, corrupted: CORRUPTED, answers, target: { kind: "features", sae } as const };
    const fast = await activationPatching(model, { ...opts, chunkSize: 7 });
    const slow = await activationPatching(model, { ...opts, method: "straightforward" });
    const P = model.toTokens(CLEAN[0]).length;
    assert.deepEqual(fast.shape, [P, F]);
    assert.deepEqual(slow.shape, fast.shape);
    const worst = (a: Float64Array, b: Float64Array) => Math.max(...a.map((v, i) => Math.abs(v - b[i])));
    assert.ok(
      worst(fast.values, slow.values) < 1e-4,
      `batch values differ by ${worst(fast.values, slow.values)}`,
    );
    assert.ok(worst(fast.perPrompt.values, slow.perPrompt.values) < 1e-4, "per-prompt values");
    // With the error term the unpatched runs are the model's own.
    const own = (texts: string[]) =>
      texts.reduce(
        (s, t) => s + rowLogitDiff(model.run(t, { logits: "last" }).data, answers.answer, answers.wrong),
        0,
      ) / texts.length;
    assert.ok(Math.abs(fast.clean - own(CLEAN)) < 1e-4 && Math.abs(fast.corrupted - own(CORRUPTED)) < 1e-4);
    // Not vacuous: some features matter, and a feature equal in both prompts is exactly 0.
    assert.ok(
      fast.values.some((v) => Math.abs(v) > 1e-3),
      "some feature restores something",
    );
    const acts = saeHookName(sae, "hook_sae_acts_post");
    const codes = (t: string) =>
      model
        .runWithCache(t, { splices: [saeSplice(sae, { useErrorTerm: true })], namesFilter: [acts] })
        .cache.get(acts).data;
    const [c0, c1, x0, x1] = [codes(CLEAN[0]), codes(CLEAN[1]), codes(CORRUPTED[0]), codes(CORRUPTED[1])];
    const same = [...c0.keys()].filter((i) => c0[i] === x0[i] && c1[i] === x1[i]);
    assert.ok(same.length > 0);
    for (const i of same) assert.equal(fast.values[i], 0);
    // Cells are named by axis (the pairs differ in length, so positions are plain indices).
    const i = fast.values.reduce((best, v, j) => (Math.abs(v) > Math.abs(fast.values[best]) ? j : best), 0);
    const [pos, feature] = [Math.floor(i / F), i % F];
    assert.equal(fast.at({ pos, feature }), fast.values[i]);
    assert.equal(fast.at({ pos, feature, prompt: 1 }), fast.perPrompt.values[fast.values.length + i]);
    assert.equal(cellLabel(fast, i), `pos ${pos}, feature ${feature}`);
  });
}

test("attribution: each cell is the finite-difference slope along its decoder row, times its change", () => {
  const sae = randomSae("blocks.2.hook_resid_pre");
  const r = attributionPatching(model, {
    clean: CLEAN.slice(0, 1),
    corrupted: CORRUPTED.slice(0, 1),
    answers,
    target: { kind: "features", sae },
  });
  const acts = saeHookName(sae, "hook_sae_acts_post");
  const splice = [saeSplice(sae, { useErrorTerm: true })];
  const codes = (t: string) =>
    model.runWithCache(t, { splices: splice, namesFilter: [acts] }).cache.get(acts).data;
  const fClean = codes(CLEAN[0]);
  const fCorr = codes(CORRUPTED[0]);
  const top = r.values.reduce((best, v, j) => (Math.abs(v) > Math.abs(r.values[best]) ? j : best), 0);
  const p = Math.floor(top / 24);
  const f = top % 24;
  const eps = 1e-2;
  const diff = (logits: { data: Float32Array }) => rowLogitDiff(logits.data, answers.answer, answers.wrong);
  const nudged = model.run(CORRUPTED[0], {
    logits: "last",
    fwdHooks: [
      [
        sae.cfg.hookName,
        (a) => {
          for (let d = 0; d < D; d++)
            a.data[p * D + d] += (eps * (fClean[top] - fCorr[top]) * sae.W_dec[f * D + d]) / 1.7;
        },
      ],
    ],
  });
  const slope = (diff(nudged) - r.corrupted) / eps / (r.clean - r.corrupted);
  assert.ok(Math.abs(slope) > 1e-3, "not vacuous");
  assert.ok(Math.abs(r.values[top] - slope) < 0.02 * Math.abs(slope) + 1e-4, `${r.values[top]} vs ${slope}`);
  for (let i = 0; i < fClean.length; i++) if (fClean[i] === fCorr[i]) assert.equal(r.values[i], 0);
});

test("attribution agrees with exact patching where the model is nearly linear (the last block's MLP output)", async () => {
  // After blocks.4.hook_mlp_out only the final norm is non-linear: small feature changes are nearly linear.
  const sae = randomSae("blocks.4.hook_mlp_out", 32);
  const opts = { clean: CLEAN, corrupted: CORRUPTED, answers, target: { kind: "features", sae } as const };
  const exact = await activationPatching(model, opts);
  const estimate = attributionPatching(model, opts);
  const moved = [...exact.values.keys()].filter((i) => Math.abs(exact.values[i]) > 1e-3);
  assert.ok(moved.length >= 5, `${moved.length} cells move the metric`);
  for (const i of moved) {
    const [e, a] = [exact.values[i], estimate.values[i]];
    assert.ok(
      Math.abs(a - e) < 0.15 * Math.abs(e) + 2e-3,
      `cell ${cellLabel(exact, i)}: exact ${e}, attribution ${a}`,
    );
  }
});
