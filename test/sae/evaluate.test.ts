/**
 * `sae eval`'s metric definitions on hand-computable cases (an SAE that reconstructs exactly, one whose
 * every feature is dead), with cross-entropies recomputed here in float64 from the model's logits.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { HookedTransformer } from "../../src/model/hooked-transformer.ts";
import { evaluateSae, promptFeatures } from "../../src/sae/evaluate.ts";
import { Sae } from "../../src/sae/sae.ts";
import { referenceKernels } from "../../src/tensor/reference-kernels.ts";
import type { Tensor } from "../../src/tensor/tensor.ts";
import { saeConfigFor } from "../helpers/random-sae.ts";

const model = await HookedTransformer.fromPretrained("stories260k", { backend: "reference" });
const HOOK = "blocks.2.hook_resid_pre";
const D = model.cfg.dModel;
const TEXTS = [
  "Once upon a time, there was a little girl named Lily.",
  "Tom had a red ball. He liked to play with it in the park every day.",
  "The sun",
  "A", // BOS + one token: one evaluated position
  "The cat sat on the mat and looked at the bird.",
];
const CONTEXT = 12;
const seqs = TEXTS.map((t) => model.toTokens(t).slice(0, CONTEXT));

/** x ↦ relu(x) − relu(−x): d_sae = 2·d_in, reconstructs every activation exactly. */
function exactSae(): Sae {
  const W_enc = new Float32Array(D * 2 * D);
  const W_dec = new Float32Array(2 * D * D);
  for (let i = 0; i < D; i++) {
    W_enc[i * 2 * D + i] = 1;
    W_enc[i * 2 * D + D + i] = -1;
    W_dec[i * D + i] = 1;
    W_dec[(D + i) * D + i] = -1;
  }
  return new Sae({
    cfg: saeConfigFor({ architecture: "standard", dIn: D, dSae: 2 * D, hookName: HOOK }),
    weights: { W_enc, W_dec, b_enc: new Float32Array(2 * D), b_dec: new Float32Array(D) },
    kernels: referenceKernels,
  });
}

/** No feature ever fires: x̂ = b_dec everywhere. */
function deadSae(bDec: Float32Array): Sae {
  return new Sae({
    cfg: {
      ...saeConfigFor({ architecture: "standard", dIn: D, dSae: 8, hookName: HOOK }),
      applyBDecToInput: false,
    },
    weights: {
      W_enc: new Float32Array(D * 8),
      W_dec: new Float32Array(8 * D).fill(1),
      b_enc: new Float32Array(8).fill(-1),
      b_dec: bDec,
    },
    kernels: referenceKernels,
  });
}

/** Float64 mean next-token cross-entropy over every sequence's positions 0..n−2, the hook's rows ≥ 1 set by `edit`. */
function ce64(edit: ((row: Float32Array) => void) | null): number {
  let total = 0;
  let count = 0;
  for (const toks of seqs) {
    const hooks = edit
      ? [
          [
            HOOK,
            (act: Tensor) => {
              for (let p = 1; p < toks.length; p++) edit(act.data.subarray(p * D, (p + 1) * D));
            },
          ] as const,
        ]
      : [];
    const logits = model.run([toks], { fwdHooks: hooks });
    const V = model.cfg.dVocab;
    for (let p = 0; p + 1 < toks.length; p++) {
      const row = logits.data.subarray(p * V, (p + 1) * V);
      const max = Math.max(...row);
      let z = 0;
      for (const v of row) z += Math.exp(v - max);
      total += max + Math.log(z) - row[toks[p + 1]];
      count++;
    }
  }
  return total / count;
}

/** The hook's activations at the evaluated positions (≥ 1), float64 rows. */
function evaluatedRows(): number[][] {
  const rows: number[][] = [];
  for (const toks of seqs) {
    const x = model.runWithCache([toks], { namesFilter: [HOOK] }).cache.get(HOOK).data;
    for (let p = 1; p < toks.length; p++) rows.push(Array.from(x.subarray(p * D, (p + 1) * D)));
  }
  return rows;
}

const close = (a: number, b: number, tol: number, what: string) =>
  assert.ok(Math.abs(a - b) <= tol * (1 + Math.abs(b)), `${what}: ${a} vs ${b}`);

const ceClean = ce64(null);
const ceZero = ce64((row) => row.fill(0));
const rows = evaluatedRows();

test("an SAE that reconstructs exactly: explained variance 1, CE score 1, L0 and dead share from the signs", async () => {
  const r = await evaluateSae(model, exactSae(), TEXTS, { context: CONTEXT, batchSize: 2 });
  assert.equal(
    r.tokens,
    seqs.reduce((a, s) => a + s.length - 1, 0),
  );
  assert.equal(r.tokens, rows.length);
  assert.equal(r.explained_variance, 1);
  close(r.ce_loss_clean, ceClean, 1e-5, "clean CE");
  close(r.ce_loss_zero_ablation, ceZero, 1e-5, "zero-ablation CE");
  close(r.ce_loss_with_sae, ceClean, 1e-5, "CE with the SAE");
  close(r.ce_loss_score, 1, 1e-4, "score");
  // Feature i fires where x_i > 0, feature D + i where x_i < 0.
  const l0 = rows.reduce((a, row) => a + row.filter((v) => v !== 0).length, 0) / rows.length;
  close(r.l0, l0, 1e-12, "L0");
  let dead = 0;
  for (let i = 0; i < D; i++) {
    if (!rows.some((row) => row[i] > 0)) dead++;
    if (!rows.some((row) => row[i] < 0)) dead++;
  }
  close(r.dead_fraction, dead / (2 * D), 1e-12, "dead share");
});

test("a dead SAE reconstructs b_dec: explained variance by hand, L0 0, everything dead, CE as hooked by hand", async () => {
  const n = rows.length;
  const mean = Array.from({ length: D }, (_, i) => rows.reduce((a, row) => a + row[i], 0) / n);
  const total = rows.reduce((a, row) => a + row.reduce((s, v, i) => s + (v - mean[i]) ** 2, 0), 0);
  const c = Float32Array.from({ length: D }, (_, i) => 0.5 * Math.cos(i));
  const err = rows.reduce((a, row) => a + row.reduce((s, v, i) => s + (v - c[i]) ** 2, 0), 0);
  const r = await evaluateSae(model, deadSae(c), TEXTS, { context: CONTEXT, batchSize: 3 });
  close(r.explained_variance, 1 - err / total, 1e-6, "explained variance");
  assert.equal(r.l0, 0);
  assert.equal(r.dead_fraction, 1);
  close(
    r.ce_loss_with_sae,
    ce64((row) => row.set(c)),
    1e-5,
    "CE with the SAE",
  );

  // b_dec = 0 is the zero ablation itself: the score is 0.
  const z = await evaluateSae(model, deadSae(new Float32Array(D)), TEXTS, { context: CONTEXT });
  assert.equal(z.ce_loss_with_sae, z.ce_loss_zero_ablation);
  assert.equal(z.ce_loss_score, 0);
  // b_dec = the mean: explained variance 0.
  const m = await evaluateSae(model, deadSae(Float32Array.from(mean)), TEXTS, { context: CONTEXT });
  close(m.explained_variance, 0, 1e-5, "mean reconstruction");
});

test("context cuts every text; refusals", async () => {
  const r = await evaluateSae(model, exactSae(), TEXTS, { context: 3 });
  assert.equal(
    r.tokens,
    TEXTS.map((t) => Math.min(model.toTokens(t).length, 3) - 1).reduce((a, b) => a + b, 0),
  );
  await assert.rejects(evaluateSae(model, exactSae(), TEXTS, { context: 1 }), /--context must be at least 2/);
  await assert.rejects(evaluateSae(model, exactSae(), [""], {}), /nothing to evaluate/);
});

test("promptFeatures: BOS first, one row of d_sae activations per position, as the SAE encodes the cache", () => {
  const sae = exactSae();
  const { tokens, activations } = promptFeatures(model, sae, TEXTS[0]);
  assert.equal(tokens[0], model.toTokens("")[0]);
  assert.deepEqual(tokens, model.toTokens(TEXTS[0]));
  const x = model.runWithCache([tokens], { namesFilter: [HOOK] }).cache.get(HOOK).data;
  assert.equal(activations.length, tokens.length * 2 * D);
  for (let p = 0; p < tokens.length; p++)
    for (let i = 0; i < D; i++) {
      assert.equal(activations[p * 2 * D + i], Math.max(x[p * D + i], 0));
      assert.equal(activations[p * 2 * D + D + i], Math.max(-x[p * D + i], 0));
    }
});
