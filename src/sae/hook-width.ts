/**
 * Which hooks an SAE may read and how wide each is per position: an SAE's d_in must be its hook's width.
 */
import { parseHookName, validateHookName } from "../model/hook-points.ts";
import type { ModelConfig } from "../weights/config.ts";
import type { SaeConfig } from "./sae-config.ts";

/** Per-position width of a hook an SAE can read (hook_z, q, k, v and QK-norm's outputs flattened over heads), or a clear error. */
export function saeHookWidth(hook: string, cfg: ModelConfig): number {
  validateHookName(hook, cfg);
  const local = parseHookName(hook).hook;
  const { nHeads, nKvHeads, dHead, dModel, dMlp } = cfg;
  if (/^attn\.(hook_(q|rot_q|z)|q_norm\.hook_normalized)$/.test(local)) return nHeads * dHead;
  if (/^attn\.(hook_(k|rot_k|v)|k_norm\.hook_normalized)$/.test(local)) return nKvHeads * dHead;
  if (/^mlp\.hook_(pre|pre_linear|post)$/.test(local)) return dMlp;
  if (/hook_(scale|pattern|attn_scores|result)$/.test(local)) {
    throw new Error(
      `An SAE cannot read ${hook}: use a residual-stream, attention/MLP output, hook_z or MLP hook`,
    );
  }
  return dModel;
}

/** Refuses, with the fix, an SAE whose hook the model lacks or whose d_in is not that hook's width. */
export function checkSaeFitsModel(sae: SaeConfig, cfg: ModelConfig): void {
  let width: number;
  try {
    width = saeHookWidth(sae.hookName, cfg);
  } catch (err) {
    throw new Error(`The SAE reads ${sae.hookName}, which this model cannot give: ${(err as Error).message}`);
  }
  const local = parseHookName(sae.hookName).hook;
  if (local === "attn.hook_z" && sae.reshapeActivations !== "hook_z") {
    throw new Error(`The SAE reads ${sae.hookName} without reshape_activations "hook_z": set it in cfg.json`);
  }
  if (sae.dIn !== width) {
    const model =
      typeof sae.metadata.model_name === "string" ? ` (it was trained on ${sae.metadata.model_name})` : "";
    throw new Error(
      `The SAE's d_in is ${sae.dIn} but ${sae.hookName} of this model is ${width} wide${model}: ` +
        "use an SAE made for this model and hook",
    );
  }
}
