/**
 * The attribution pass of the contraction study in one call: one cached forward, then accumulated,
 * decomposed and per-head logit-difference attribution at each prompt's final real position.
 */
import type { HookedTransformer } from "../model/hooked-transformer.ts";
import type { ModelInput } from "../model/input.ts";
import type { Tensor } from "../tensor/tensor.ts";
import type { ModelConfig } from "../weights/config.ts";
import { type LogitDiffResult, logitDiff } from "./answer-metrics.ts";
import { type LogitAttribution, logitAttrs, logitDiffDirections } from "./logit-attribution.ts";
import { accumulatedResid, decomposeResid, stackHeadResults } from "./residual-stack.ts";

export interface AttributionResult {
  logitDiff: LogitDiffResult;
  /** accumulated_resid(incl_mid) with the cached ln_final scale, or own statistics with `logitLens`. */
  accumulated: LogitAttribution;
  decomposed: LogitAttribution;
  /** Per head, labels L{l}H{h} in layer-major order. */
  heads: LogitAttribution;
  /** Per prompt: the part of the logit difference no residual piece carries (b_U difference). */
  offsets: number[];
  logits: Tensor;
  lengths: number[];
}

/** The hooks the attribution pass reads; everything else is left out of the cache. */
export function attributionHookNames(cfg: Pick<ModelConfig, "nLayers" | "positions">): string[] {
  const { nLayers } = cfg;
  const names = ["hook_embed", "ln_final.hook_scale"];
  if (cfg.positions === "learned") names.push("hook_pos_embed");
  for (let l = 0; l < nLayers; l++) {
    for (const h of [
      "hook_resid_pre",
      "hook_resid_mid",
      "hook_resid_post",
      "hook_attn_out",
      "hook_mlp_out",
      "attn.hook_z",
    ])
      names.push(`blocks.${l}.${h}`);
  }
  return names;
}

export function attributeLogitDiff(
  model: HookedTransformer,
  prompts: ModelInput,
  /** One token for every prompt, or one per prompt. */
  answer: number | readonly number[],
  wrong: number | readonly number[],
  opts: { logitLens?: boolean; prependBos?: boolean } = {},
): AttributionResult {
  const { logits, cache, lengths } = model.runWithCache(prompts, {
    namesFilter: attributionHookNames(model.cfg),
    logits: "last",
    prependBos: opts.prependBos,
  });
  if (!logits) throw new Error("attribution needs the final-position logits");
  const dirs = logitDiffDirections(model, answer, wrong, lengths.length);
  const accumulated = logitAttrs(model, cache, accumulatedResid(model, cache, { inclMid: true }), dirs, {
    ln: opts.logitLens ? "recompute" : "cached",
  });
  const decomposed = logitAttrs(model, cache, decomposeResid(model, cache), dirs);
  const heads = logitAttrs(model, cache, stackHeadResults(model, cache), dirs);
  return {
    logitDiff: logitDiff(logits, lengths, answer, wrong),
    accumulated,
    decomposed,
    heads,
    offsets: [...dirs.offsets],
    logits,
    lengths,
  };
}

/** The `attribute --json` shape: batch means, heads as [layer][head]. */
export function attributionJson(r: AttributionResult, nLayers: number, nHeads: number) {
  const heads: number[][] = [];
  for (let l = 0; l < nLayers; l++)
    heads.push(Array.from(r.heads.mean.subarray(l * nHeads, (l + 1) * nHeads)));
  return {
    logitDiff: r.logitDiff.mean,
    accumulatedResid: { labels: r.accumulated.labels, values: Array.from(r.accumulated.mean) },
    decomposeResid: { labels: r.decomposed.labels, values: Array.from(r.decomposed.mean) },
    heads,
  };
}
