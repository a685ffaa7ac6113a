/**
 * Direct logit attribution of SAE features: feature j at a position writes `f_j · W_dec[j]` into the
 * residual stream (through the final norm as heads and neurons are, with the cached ln_final scale), so
 * its attribution is `f_j · (W_dec[j] · (W_U[:, answer] − W_U[:, wrong]))` centred and scaled. Needs a
 * cache of a run with the SAE spliced in (its `hook_sae_acts_post`).
 */
import type { ActivationCache } from "../model/activation-cache.ts";
import { parseHookName } from "../model/hook-points.ts";
import type { Sae } from "../sae/sae.ts";
import {
  type LnMode,
  type LogitAttribution,
  type LogitDirections,
  weightRowLogitAttrs,
} from "./logit-attribution.ts";
import type { PositionSpec } from "./positions.ts";
import type { AnalysisModel } from "./residual-stack.ts";

/** Hooks whose activation is a piece of the residual stream, so a decoder row reaches the logits directly. */
const RESIDUAL_HOOKS = /^(hook_resid_(pre|mid|post)|hook_attn_out|hook_mlp_out)$/;

/** Attribution of every feature (labels `F0`, `F1`, ...): `values` [d_sae, batch, nPos]. */
export function featureLogitAttrs(
  model: AnalysisModel,
  cache: ActivationCache,
  sae: Sae,
  dirs: LogitDirections,
  opts: { ln?: LnMode; pos?: PositionSpec } = {},
): LogitAttribution {
  const hook = sae.cfg.hookName;
  if (!RESIDUAL_HOOKS.test(parseHookName(hook).hook)) {
    throw new Error(
      `Direct logit attribution of features needs an SAE on the residual stream or an attention/MLP output, not ${hook}`,
    );
  }
  const name = `${hook}.hook_sae_acts_post`;
  if (!cache.has(name)) {
    throw new Error(`${name} is not in this cache: run with the SAE spliced in (splices: [saeSplice(sae)])`);
  }
  const labels = Array.from({ length: sae.dSae }, (_, j) => `F${j}`);
  // The decoder's output is divided by activation_scaler's factor.
  const s = sae.scalingFactor;
  const W = s === 1 ? sae.W_dec : sae.W_dec.map((v) => v / s);
  return weightRowLogitAttrs(model, cache, dirs, { W, acts: cache.get(name), labels }, opts);
}
