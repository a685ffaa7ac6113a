import { ActivationCache } from "../model/activation-cache.ts";
import { attentionBackward, scoreTransformOf } from "../model/attention.ts";
import { blockOps, opsOfBlock, rotaryOf, unembedOp } from "../model/block-ops.ts";
import { allHookNames, type HookModel } from "../model/hook-points.ts";
import type { HookedTransformer } from "../model/hooked-transformer.ts";
import type { ModelInput } from "../model/input.ts";
import { addArrays } from "../model/layouts.ts";
import { mlpBackward } from "../model/mlp.ts";
import { normBackward } from "../model/normalization.ts";
import {
  addReadoutGradient,
  logitReadout,
  readoutSlope,
  softCapLogits,
  softCapLogitsBackward,
} from "../model/readout.ts";
import type { LinearOp } from "../tensor/kernels.ts";
import { Tensor } from "../tensor/tensor.ts";
import type { LayerNormParams } from "../weights/canonical-weights.ts";

import {
  type BackwardCopies,
  releasesBackwardCopies,
  runInLockstep,
  type StagedBackward,
} from "./backward-copies.ts";
import type { LogitGradient, LogitMetric } from "./logit-metric.ts";

/** Every hook a backward pass reads from the forward cache: all default hook points of the model. */
export function backwardCacheNames(model: HookModel): string[] {
  return allHookNames(model);
}

export interface BackwardOptions {
  /** Keep the gradients of these hooks only (default: every hook). */
  namesFilter?: (name: string) => boolean;
  /** Keep or release the backward copies of the weights (default "auto": see backward-copies.ts). */
  copies?: BackwardCopies;
  /** Called after each stage (the unembedding, then each layer) with (stages done, total). */
  onProgress?: (done: number, total: number) => void;
}

/** One backward pass: a full forward cache and d metric / d final-position logits (the seed). */
export interface BackwardRequest {
  cache: ActivationCache;
  seed: LogitGradient;
}

/**
 * d metric / d (every hook activation), given a full forward cache and d metric / d final-position logits
 * (the seed). TransformerLens' `run_with_cache(..., incl_bwd=True)`: the gradient at each hook is the total
 * gradient flowing into that activation (at `hook_resid_pre` all downstream paths; at `hook_pattern`
 * d/d pattern; at `hook_attn_scores` through the softmax; at `ln*.hook_scale` d/d scale alone; at
 * `attn.hook_k` / `hook_v` summed over the query heads sharing each key/value head).
 * Follows the architecture: LayerNorm or RMSNorm, rotary q/k (`hook_q` gets `hook_rot_q`'s gradient
 * rotated back), plain or gated MLP (`mlp.hook_pre` is the gate, `mlp.hook_pre_linear` the up projection).
 * Uses the model's own kernel ops for every product with a weight (`LinearOp.backward` = dy @ W^T).
 */
export function backwardFromCache(
  model: HookedTransformer,
  cache: ActivationCache,
  seed: LogitGradient,
  opts: BackwardOptions = {},
): ActivationCache {
  return backwardMany(model, [{ cache, seed }], opts)[0];
}

/**
 * Several backward passes (e.g. one per prompt) advanced together layer by layer, so that each layer's
 * backward copies of the weights are built at most once for all of them and, when memory is tight
 * (`releasesBackwardCopies`), released as soon as every pass is past that layer.
 */
export function backwardMany(
  model: HookedTransformer,
  requests: readonly BackwardRequest[],
  opts: BackwardOptions = {},
): ActivationCache[] {
  const keep = opts.namesFilter ?? (() => true);
  const passes = requests.map((r) => stagedBackward(model, r.cache, r.seed, keep));
  const stages = model.cfg.nLayers + 1;
  return runInLockstep(passes, {
    release: releasesBackwardCopies(model, opts.copies),
    onStage: (done) => opts.onProgress?.(done, stages),
  });
}

/** The backward pass itself, yielding the ops each stage used (see `runInLockstep`). */
function* stagedBackward(
  model: HookedTransformer,
  cache: ActivationCache,
  seed: LogitGradient,
  keep: (name: string) => boolean,
): StagedBackward<ActivationCache> {
  const { cfg, weights } = model;
  const { nLayers: L, nHeads: H, nKvHeads: Hkv, dHead: dh, dModel: D } = cfg;
  const transform = scoreTransformOf(cfg);
  const HD = H * dh;
  const KD = Hkv * dh;
  const residLast = cache.get(`blocks.${L - 1}.hook_resid_post`);
  const [B, P] = residLast.shape;
  const rows = B * P;
  const finalPos = cache.finalPositions();
  const grads = new Map<string, Tensor>();
  const put = (name: string, data: Float32Array, shape: readonly number[]) => {
    if (keep(name)) grads.set(name, new Tensor(data, shape));
  };

  // Unembed: d/d ln_final.hook_normalized, nonzero only at each prompt's final position. The seed is
  // d/d the (soft-capped, for a capped model) logits: the cap's slope at this run's logits carries it back.
  const gNormFinal = new Float32Array(rows * D);
  const unembed: LinearOp[] = [];
  const cap = cfg.finalSoftCap ?? null;
  // What the capped logits are read from (only a capped model needs it: readoutSlope is 1 otherwise).
  const yFinal = cap === null ? new Float32Array(0) : cache.get("ln_final.hook_normalized").data;
  if (seed.kind === "sparse") {
    const V = cfg.dVocab;
    for (const { batch: b, token, weight } of seed.entries) {
      if (b < 0 || b >= B) throw new Error(`Seed entry for prompt ${b}, but the batch has ${B} prompts`);
      if (token < 0 || token >= V) throw new Error(`Seed token ${token} is outside the vocabulary [0, ${V})`);
      const o = (b * P + finalPos[b]) * D;
      const readout = logitReadout(model, token);
      addReadoutGradient(readout, weight * readoutSlope(readout, yFinal, o), gNormFinal, o);
    }
  } else {
    if (seed.grad.length !== B * cfg.dVocab) {
      throw new Error(
        `Dense logit gradient has ${seed.grad.length} values; expected [batch ${B}, d_vocab ${cfg.dVocab}]`,
      );
    }
    unembed.push(unembedOp(model));
    let gRaw = seed.grad;
    if (cap !== null) {
      const last = new Float32Array(B * D);
      for (let b = 0; b < B; b++)
        last.set(yFinal.subarray((b * P + finalPos[b]) * D, (b * P + finalPos[b] + 1) * D), b * D);
      gRaw = softCapLogitsBackward(softCapLogits(unembed[0].forward(last, B), cap), seed.grad, cap);
    }
    const g = unembed[0].backward(gRaw, B); // [B, D]
    for (let b = 0; b < B; b++) gNormFinal.set(g.subarray(b * D, (b + 1) * D), (b * P + finalPos[b]) * D);
  }
  put("ln_final.hook_normalized", gNormFinal, [B, P, D]);
  const lnF = normBackward({
    kind: cfg.normalization,
    x: residLast.data,
    scale: cache.get("ln_final.hook_scale").data,
    ln: weights.lnFinal,
    gNormalized: gNormFinal,
    rows,
    D,
  });
  put("ln_final.hook_scale", lnF.gScale, [B, P, 1]);
  yield unembed;

  let gResid = lnF.gInput; // d/d resid_post of the current layer
  for (let l = L - 1; l >= 0; l--) {
    const name = (s: string) => `blocks.${l}.${s}`;
    const act = (s: string) => cache.get(name(s)).data;
    const ops = blockOps(model, l);
    const w = weights.blocks[l];
    put(name("hook_resid_post"), gResid, [B, P, D]);
    /**
     * d/d a post-norm's input from d/d its output (`norm` absent: no post-norm, the gradient as it is). Its
     * input is no hook: the projection that made it is run again on the cached activation it read.
     */
    const postNormBackward = (
      prefix: string,
      norm: LayerNormParams | undefined,
      input: () => Float32Array,
      gOut: Float32Array,
    ) => {
      if (!norm) return gOut;
      put(name(`${prefix}.hook_normalized`), gOut, [B, P, D]);
      const scale = act(`${prefix}.hook_scale`);
      const g = normBackward({
        kind: cfg.normalization,
        x: input(),
        scale,
        ln: norm,
        gNormalized: gOut,
        rows,
        D,
      });
      put(name(`${prefix}.hook_scale`), g.gScale, [B, P, 1]);
      return g.gInput;
    };

    // resid_post = resid_mid + mlp_out (mlp_out = ln2_post(the MLP's output) with post-norms)
    put(name("hook_mlp_out"), gResid, [B, P, D]);
    const gPost = ops.mlpOut.backward(
      postNormBackward("ln2_post", w.ln2Post, () => ops.mlpOut.forward(act("mlp.hook_post"), rows), gResid),
      rows,
    );
    put(name("mlp.hook_post"), gPost, [B, P, cfg.dMlp]);
    const mlp = mlpBackward({
      ops,
      kernels: model.kernels,
      act: cfg.act,
      saved: { pre: act("mlp.hook_pre"), up: cfg.gatedMlp ? act("mlp.hook_pre_linear") : null },
      gPost,
      rows,
    });
    put(name("mlp.hook_pre"), mlp.gPre, [B, P, cfg.dMlp]);
    if (mlp.gUp) put(name("mlp.hook_pre_linear"), mlp.gUp, [B, P, cfg.dMlp]);
    const gNorm2 = mlp.gInput;
    put(name("ln2.hook_normalized"), gNorm2, [B, P, D]);
    // ln2 reads resid_mid, or resid_pre in a parallel block (its gradient then joins ln1's below).
    const parallel = cfg.parallelResidual;
    const ln2 = normBackward({
      kind: cfg.normalization,
      x: act(parallel ? "hook_resid_pre" : "hook_resid_mid"),
      scale: act("ln2.hook_scale"),
      ln: w.ln2,
      gNormalized: gNorm2,
      rows,
      D,
    });
    put(name("ln2.hook_scale"), ln2.gScale, [B, P, 1]);
    const gMid = parallel ? gResid : addArrays(gResid, ln2.gInput);
    put(name("hook_resid_mid"), gMid, [B, P, D]);

    // resid_mid = resid_pre + attn_out (attn_out = ln1_post(attention's output) with post-norms)
    put(name("hook_attn_out"), gMid, [B, P, D]);
    const gZ = ops.o.backward(
      postNormBackward("ln1_post", w.ln1Post, () => ops.o.forward(act("attn.hook_z"), rows), gMid),
      rows,
    ); // [B, P, H, dh]
    put(name("attn.hook_z"), gZ, [B, P, H, dh]);
    const rotary = rotaryOf(model, l);
    const att = attentionBackward({
      // The scores read q and k after QK-norm and rotation.
      q: act(rotary ? "attn.hook_rot_q" : w.qNorm ? "attn.q_norm.hook_normalized" : "attn.hook_q"),
      k: act(rotary ? "attn.hook_rot_k" : w.kNorm ? "attn.k_norm.hook_normalized" : "attn.hook_k"),
      v: act("attn.hook_v"),
      pattern: act("attn.hook_pattern"),
      gZ,
      B,
      P,
      H,
      Hkv,
      dh,
      transform,
      scores: transform.softCap === null ? undefined : act("attn.hook_attn_scores"),
    });
    put(name("attn.hook_pattern"), att.gPattern, [B, H, P, P]);
    put(name("attn.hook_attn_scores"), att.gScores, [B, H, P, P]);
    let { gQ, gK } = att;
    if (rotary) {
      put(name("attn.hook_rot_q"), gQ, [B, P, H, dh]);
      put(name("attn.hook_rot_k"), gK, [B, P, Hkv, dh]);
      // A rotation's backward is the inverse rotation (it is orthogonal).
      const at = { batch: B, pos: P, dHead: dh, firstPos: 0, inverse: true };
      gQ = rotary.rotate(gQ, { ...at, heads: H });
      gK = rotary.rotate(gK, { ...at, heads: Hkv });
    }
    // QK-norm (Gemma 3): the rotation read each head's normalised q and k; back through the norm to the projection.
    const qkNormBackward = (
      which: "q" | "k",
      norm: LayerNormParams | undefined,
      g: Float32Array,
      heads: number,
    ) => {
      if (!norm) return g;
      put(name(`attn.${which}_norm.hook_normalized`), g, [B, P, heads, dh]);
      const back = normBackward({
        kind: cfg.normalization,
        x: act(`attn.hook_${which}`),
        scale: act(`attn.${which}_norm.hook_scale`),
        ln: norm,
        gNormalized: g,
        rows: rows * heads,
        D: dh,
      });
      put(name(`attn.${which}_norm.hook_scale`), back.gScale, [B, P, heads, 1]);
      return back.gInput;
    };
    gQ = qkNormBackward("q", w.qNorm, gQ, H);
    gK = qkNormBackward("k", w.kNorm, gK, Hkv);
    put(name("attn.hook_q"), gQ, [B, P, H, dh]);
    put(name("attn.hook_k"), gK, [B, P, Hkv, dh]);
    put(name("attn.hook_v"), att.gV, [B, P, Hkv, dh]);
    const W = HD + 2 * KD; // the fused op's columns: q | k | v per row
    const gQkv = new Float32Array(rows * W);
    for (let r = 0; r < rows; r++) {
      gQkv.set(gQ.subarray(r * HD, (r + 1) * HD), r * W);
      gQkv.set(gK.subarray(r * KD, (r + 1) * KD), r * W + HD);
      gQkv.set(att.gV.subarray(r * KD, (r + 1) * KD), r * W + HD + KD);
    }
    const gNorm1 = ops.qkv.backward(gQkv, rows);
    put(name("ln1.hook_normalized"), gNorm1, [B, P, D]);
    const ln1 = normBackward({
      kind: cfg.normalization,
      x: act("hook_resid_pre"),
      scale: act("ln1.hook_scale"),
      ln: w.ln1,
      gNormalized: gNorm1,
      rows,
      D,
    });
    put(name("ln1.hook_scale"), ln1.gScale, [B, P, 1]);
    gResid = addArrays(gMid, ln1.gInput);
    if (parallel) gResid = addArrays(gResid, ln2.gInput);
    put(name("hook_resid_pre"), gResid, [B, P, D]);
    yield opsOfBlock(ops);
  }
  // resid_pre of block 0 = embed (+ pos_embed for learned positions)
  put("hook_embed", gResid, [B, P, D]);
  if (cfg.positions === "learned") put("hook_pos_embed", gResid, [B, P, D]);
  return new ActivationCache(grads, cache.lengths, cfg);
}

export interface GradientRun {
  /** The metric on this run. */
  value: number;
  /** [batch, d_vocab]: each prompt's logits at its final real position. */
  finalLogits: Tensor;
  /** Every default hook activation of the forward pass. */
  cache: ActivationCache;
  /** d metric / d each hook activation, same names and shapes as `cache`. */
  grads: ActivationCache;
}

/** One forward (caching every hook) and one backward pass: `run_with_cache(..., incl_bwd=True)` for a logit metric. */
export function runWithGradients(
  model: HookedTransformer,
  input: ModelInput,
  metric: LogitMetric,
): GradientRun {
  const names = new Set(backwardCacheNames(model.cfg));
  const out = model.runWithCache(input, { namesFilter: (n) => names.has(n), logits: "last" });
  const last = out.logits!;
  const finalLogits = new Tensor(last.data, [last.shape[0], last.shape[2]]);
  const value = metric.value(finalLogits);
  const grads = backwardFromCache(model, out.cache, metric.gradient(finalLogits));
  return { value, finalLogits, cache: out.cache, grads };
}
