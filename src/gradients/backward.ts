import { ActivationCache } from "../model/activation-cache.ts";
import { allHookNames } from "../model/hook-points.ts";
import type { HookedTransformer } from "../model/hooked-transformer.ts";
import type { ModelInput } from "../model/input.ts";
import { normBackward } from "../model/normalization.ts";
import { activationDerivative } from "../tensor/activations.ts";
import { Tensor } from "../tensor/tensor.ts";
import { attentionBackward } from "./attention-backward.ts";
import type { LogitGradient, LogitMetric } from "./logit-metric.ts";

/** Every hook a backward pass reads from the forward cache: all default hook points. */
export function backwardCacheNames(nLayers: number): string[] {
  return allHookNames(nLayers);
}

/**
 * d metric / d (every hook activation), given a full forward cache and d metric / d final-position logits
 * (the seed). TransformerLens' `run_with_cache(..., incl_bwd=True)`: the gradient at each hook is the total
 * gradient flowing into that activation (at `hook_resid_pre` all downstream paths; at `hook_pattern`
 * d/d pattern; at `hook_attn_scores` through the softmax; at `ln*.hook_scale` d/d scale alone).
 * Uses the model's own kernel ops for every product with a weight (`LinearOp.backward` = dy @ W^T).
 */
export function backwardFromCache(
  model: HookedTransformer,
  cache: ActivationCache,
  seed: LogitGradient,
): ActivationCache {
  const { cfg, weights } = model;
  const engine = model.forwardEngine;
  const { nLayers: L, nHeads: H, dHead: dh, dModel: D, dMlp } = cfg;
  const HD = H * dh;
  const residLast = cache.get(`blocks.${L - 1}.hook_resid_post`);
  const [B, P] = residLast.shape;
  const rows = B * P;
  const finalPos = cache.finalPositions();
  const grads = new Map<string, Tensor>();
  const put = (name: string, data: Float32Array, shape: readonly number[]) =>
    grads.set(name, new Tensor(data, shape));

  // Unembed: d/d ln_final.hook_normalized, nonzero only at each prompt's final position.
  const gNormFinal = new Float32Array(rows * D);
  if (seed.kind === "sparse") {
    const WU = weights.W_U.data; // [D, V]: column `token` is the unembedding direction
    const V = cfg.dVocab;
    for (const { batch: b, token, weight } of seed.entries) {
      if (b < 0 || b >= B) throw new Error(`Seed entry for prompt ${b}, but the batch has ${B} prompts`);
      if (token < 0 || token >= V) throw new Error(`Seed token ${token} is outside the vocabulary [0, ${V})`);
      const o = (b * P + finalPos[b]) * D;
      for (let d = 0; d < D; d++) gNormFinal[o + d] += weight * WU[d * V + token];
    }
  } else {
    if (seed.grad.length !== B * cfg.dVocab) {
      throw new Error(
        `Dense logit gradient has ${seed.grad.length} values; expected [batch ${B}, d_vocab ${cfg.dVocab}]`,
      );
    }
    const g = engine.unembedOp().backward(seed.grad, B); // [B, D]
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

  let gResid = lnF.gInput; // d/d resid_post of the current layer
  for (let l = L - 1; l >= 0; l--) {
    const name = (s: string) => `blocks.${l}.${s}`;
    const act = (s: string) => cache.get(name(s)).data;
    const ops = engine.blockOps(l);
    const w = weights.blocks[l];
    put(name("hook_resid_post"), gResid, [B, P, D]);

    // resid_post = resid_mid + mlp_out
    put(name("hook_mlp_out"), gResid, [B, P, D]);
    const gPost = ops.mlpOut.backward(gResid, rows);
    put(name("mlp.hook_post"), gPost, [B, P, dMlp]);
    const pre = act("mlp.hook_pre");
    const gPre = new Float32Array(rows * dMlp);
    for (let i = 0; i < gPre.length; i++)
      if (gPost[i] !== 0) gPre[i] = gPost[i] * activationDerivative(cfg.act, pre[i]);
    put(name("mlp.hook_pre"), gPre, [B, P, dMlp]);
    const gNorm2 = ops.mlpIn.backward(gPre, rows);
    put(name("ln2.hook_normalized"), gNorm2, [B, P, D]);
    const ln2 = normBackward({
      kind: cfg.normalization,
      x: act("hook_resid_mid"),
      scale: act("ln2.hook_scale"),
      ln: w.ln2,
      gNormalized: gNorm2,
      rows,
      D,
    });
    put(name("ln2.hook_scale"), ln2.gScale, [B, P, 1]);
    const gMid = addArrays(gResid, ln2.gInput);
    put(name("hook_resid_mid"), gMid, [B, P, D]);

    // resid_mid = resid_pre + attn_out
    put(name("hook_attn_out"), gMid, [B, P, D]);
    const gZ = ops.o.backward(gMid, rows); // [rows, H*dh] = [B, P, H, dh]
    put(name("attn.hook_z"), gZ, [B, P, H, dh]);
    const att = attentionBackward(
      act("attn.hook_q"),
      act("attn.hook_k"),
      act("attn.hook_v"),
      act("attn.hook_pattern"),
      gZ,
      B,
      P,
      H,
      dh,
    );
    put(name("attn.hook_pattern"), att.gPattern, [B, H, P, P]);
    put(name("attn.hook_attn_scores"), att.gScores, [B, H, P, P]);
    put(name("attn.hook_q"), att.gQ, [B, P, H, dh]);
    put(name("attn.hook_k"), att.gK, [B, P, H, dh]);
    put(name("attn.hook_v"), att.gV, [B, P, H, dh]);
    const gQkv = new Float32Array(rows * 3 * HD); // the fused op's columns: q | k | v per row
    for (let r = 0; r < rows; r++) {
      const o = r * HD;
      gQkv.set(att.gQ.subarray(o, o + HD), r * 3 * HD);
      gQkv.set(att.gK.subarray(o, o + HD), r * 3 * HD + HD);
      gQkv.set(att.gV.subarray(o, o + HD), r * 3 * HD + 2 * HD);
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
    put(name("hook_resid_pre"), gResid, [B, P, D]);
  }
  // resid_pre of block 0 = embed + pos_embed
  put("hook_embed", gResid, [B, P, D]);
  put("hook_pos_embed", gResid, [B, P, D]);
  return new ActivationCache(grads, cache.lengths, L);
}

function addArrays(a: Float32Array, b: Float32Array): Float32Array {
  const out = new Float32Array(a.length);
  for (let i = 0; i < a.length; i++) out[i] = a[i] + b[i];
  return out;
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
  const names = new Set(backwardCacheNames(model.cfg.nLayers));
  const out = model.runWithCache(input, { namesFilter: (n) => names.has(n), logits: "last" });
  const last = out.logits!;
  const finalLogits = new Tensor(last.data, [last.shape[0], last.shape[2]]);
  const value = metric.value(finalLogits);
  const grads = backwardFromCache(model, out.cache, metric.gradient(finalLogits));
  return { value, finalLogits, cache: out.cache, grads };
}
