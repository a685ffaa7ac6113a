/**
 * SAEs inside the model (HookedSAETransformer): the activation replaced by the reconstruction, the error
 * term making the output exactly the model's, the SAE's hook points cached and hookable, feature edits in
 * run and generate. Checked against runs that do the same by hand with a plain hook on the model.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { HookedTransformer } from "../../src/model/hooked-transformer.ts";
import { featureEditHook, SAE_HOOK_NAMES, saeHookName, saeSplice } from "../../src/sae/attach.ts";
import { Sae } from "../../src/sae/sae.ts";
import type { SaeArchitecture } from "../../src/sae/sae-config.ts";
import { referenceKernels } from "../../src/tensor/reference-kernels.ts";
import type { Tensor } from "../../src/tensor/tensor.ts";
import { randomSaeWeights, saeConfigFor } from "../helpers/random-sae.ts";

const model = await HookedTransformer.fromPretrained("stories260k", { backend: "reference" });
const PROMPT = "Once upon a time, there was a little girl named Lily.";
const HOOK = "blocks.2.hook_resid_pre";
const D = model.cfg.dModel;

function makeSae(architecture: SaeArchitecture, hookName = HOOK, dIn = D): Sae {
  const dSae = 96;
  return new Sae({
    cfg: saeConfigFor({ architecture, dIn, dSae, hookName, k: 6 }),
    weights: randomSaeWeights({ architecture, dIn, dSae, seed: 3, encScale: 0.3 }),
    kernels: referenceKernels,
  });
}

/** Replaces the hook's activation, row by row, with what `f(row)` gives (a plain model hook). */
function replaceRows(hook: string, width: number, f: (row: Float32Array, r: number) => ArrayLike<number>) {
  return [
    hook,
    (act: Tensor) => {
      for (let r = 0; r * width < act.size; r++)
        act.data.set(f(act.data.slice(r * width, (r + 1) * width), r), r * width);
    },
  ] as const;
}

const plain = model.run(PROMPT);

for (const arch of ["standard", "topk", "jumprelu", "gated"] as const) {
  test(`${arch}: with the error term the output is exactly the model's; without it, the reconstruction's`, () => {
    const sae = makeSae(arch);
    const withError = model.run(PROMPT, { splices: [saeSplice(sae, { useErrorTerm: true })] });
    assert.deepEqual(withError.data, plain.data);

    const spliced = model.run(PROMPT, { splices: [saeSplice(sae)] });
    const byHand = model.run(PROMPT, {
      fwdHooks: [replaceRows(HOOK, D, (row) => sae.decode(sae.encode(row, 1).post, 1))],
    });
    assert.deepEqual(spliced.data, byHand.data);
    // Not vacuous: the reconstruction changes the logits.
    const diff = spliced.data.reduce((m, v, i) => Math.max(m, Math.abs(v - plain.data[i])), 0);
    assert.ok(diff > 1e-3, `reconstruction moved the logits by ${diff}`);
  });
}

test("the cache holds every SAE hook point under the hook's name, consistent with each other", () => {
  const sae = makeSae("topk");
  const { cache } = model.runWithCache(PROMPT, { splices: [saeSplice(sae, { useErrorTerm: true })] });
  const P = model.toTokens(PROMPT).length;
  for (const h of SAE_HOOK_NAMES) assert.ok(cache.has(`${HOOK}.${h}`), h);
  const x = cache.get(HOOK);
  const input = cache.get(`${HOOK}.hook_sae_input`);
  const pre = cache.get(`${HOOK}.hook_sae_acts_pre`);
  const post = cache.get(`${HOOK}.hook_sae_acts_post`);
  const recons = cache.get(`${HOOK}.hook_sae_recons`);
  const error = cache.get(`${HOOK}.hook_sae_error`);
  assert.deepEqual(pre.shape, [1, P, 96]);
  assert.deepEqual(post.shape, [1, P, 96]);
  assert.deepEqual(recons.shape, [1, P, D]);
  assert.deepEqual(input.data, x.data);
  const codes = sae.encode(x.data, P);
  assert.deepEqual(post.data, codes.post);
  assert.deepEqual(recons.data, sae.decode(codes.post, P));
  for (let i = 0; i < x.size; i++) assert.ok(Math.abs(recons.data[i] + error.data[i] - x.data[i]) < 1e-5);
  // TopK: at most k features per position.
  for (let p = 0; p < P; p++)
    assert.ok(post.data.subarray(p * 96, (p + 1) * 96).filter((v) => v !== 0).length <= 6);
  // A names filter may ask for the SAE's points by name.
  const only = model.runWithCache(PROMPT, {
    splices: [saeSplice(sae)],
    namesFilter: [saeHookName(sae, "hook_sae_acts_post")],
  }).cache;
  assert.deepEqual(only.names, [saeHookName(sae, "hook_sae_acts_post")]);
});

test("every SAE hook point is hookable: ablating a feature equals adding −f·W_dec by hand", () => {
  const sae = makeSae("standard");
  const P = model.toTokens(PROMPT).length;
  const { cache } = model.runWithCache(PROMPT, { namesFilter: [HOOK] });
  const codes = sae.encode(cache.get(HOOK).data, P);
  // The feature that fires most over the prompt.
  const totals = new Float64Array(96);
  codes.post.forEach((v, i) => {
    totals[i % 96] += v;
  });
  const f = totals.indexOf(Math.max(...totals));
  assert.ok(totals[f] > 0);

  const ablated = model.run(PROMPT, {
    splices: [saeSplice(sae, { useErrorTerm: true })],
    fwdHooks: [featureEditHook(sae, { ablate: [f] })],
  });
  const byHand = model.run(PROMPT, {
    fwdHooks: [
      replaceRows(HOOK, D, (row, r) => row.map((v, i) => v - codes.post[r * 96 + f] * sae.W_dec[f * D + i])),
    ],
  });
  for (let i = 0; i < byHand.size; i++)
    assert.ok(Math.abs(ablated.data[i] - byHand.data[i]) < 1e-4, `logit ${i}`);
  assert.ok(
    ablated.data.some((v, i) => Math.abs(v - plain.data[i]) > 1e-3),
    "the ablation changes the logits",
  );

  // Hooks on the input, pre-activations, reconstruction and error all reach the output.
  for (const h of ["hook_sae_input", "hook_sae_acts_pre", "hook_sae_recons", "hook_sae_error"] as const) {
    let seen = 0;
    const out = model.run(PROMPT, {
      splices: [saeSplice(sae, { useErrorTerm: true })],
      fwdHooks: [
        [
          saeHookName(sae, h),
          (act) => {
            seen++;
            act.data.fill(0);
          },
        ],
      ],
    });
    assert.equal(seen, 1, h);
    assert.ok(
      out.data.some((v, i) => Math.abs(v - plain.data[i]) > 1e-3),
      `${h} reaches the output`,
    );
  }
  assert.throws(
    () => featureEditHook(sae, { ablate: [96] }),
    /Feature 96 is out of range: this SAE has features 0..95/,
  );
  assert.throws(
    () => model.run(PROMPT, { fwdHooks: [[saeHookName(sae, "hook_sae_acts_post"), () => {}]] }),
    /Unknown hook name/,
  );
});

test("an attn.hook_z SAE reads z flattened over heads", () => {
  const width = model.cfg.nHeads * model.cfg.dHead;
  const sae = makeSae("jumprelu", "blocks.1.attn.hook_z", width);
  const spliced = model.run(PROMPT, { splices: [saeSplice(sae)] });
  const byHand = model.run(PROMPT, {
    fwdHooks: [replaceRows("blocks.1.attn.hook_z", width, (row) => sae.decode(sae.encode(row, 1).post, 1))],
  });
  assert.deepEqual(spliced.data, byHand.data);
  assert.deepEqual(model.run(PROMPT, { splices: [saeSplice(sae, { useErrorTerm: true })] }).data, plain.data);
});

test("generate steers with a clamped feature at every step, as a hand-written hook does", () => {
  const sae = makeSae("topk");
  const f = 5;
  const steered = model.generate(PROMPT, {
    maxNewTokens: 8,
    temperature: 0,
    splices: [saeSplice(sae, { useErrorTerm: true })],
    fwdHooks: [featureEditHook(sae, { steer: new Map([[f, 40]]) })],
  });
  const byHand = model.generate(PROMPT, {
    maxNewTokens: 8,
    temperature: 0,
    fwdHooks: [
      replaceRows(HOOK, D, (row) => {
        const a = sae.encode(row, 1).post[f];
        return row.map((v, i) => v + (40 - a) * sae.W_dec[f * D + i]);
      }),
    ],
  });
  const free = model.generate(PROMPT, { maxNewTokens: 8, temperature: 0 });
  assert.deepEqual(steered.newTokens, byHand.newTokens);
  assert.notDeepEqual(steered.newTokens, free.newTokens, "steering changes the continuation");
  const errorOnly = model.generate(PROMPT, {
    maxNewTokens: 8,
    temperature: 0,
    splices: [saeSplice(sae, { useErrorTerm: true })],
  });
  assert.deepEqual(errorOnly.newTokens, free.newTokens);
});
