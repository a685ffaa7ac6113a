/**
 * SAEs inside the model, as SAELens' HookedSAETransformer: the SAE is spliced into its hook point, the
 * activation is replaced by the reconstruction (optionally plus the error term), and the SAE's own hook
 * points fire under the hook's name: `blocks.2.hook_resid_pre.hook_sae_acts_post`, ...
 *
 *   model.run(prompt, { splices: [saeSplice(sae)] });
 *   model.runWithCache(prompt, { splices: [saeSplice(sae, { useErrorTerm: true })] });
 *
 * With the error term, the error is x − x̂ of the SAE run without its hooks (as SAELens computes it), so
 * with no hook editing anything the model's output is exactly its own.
 */
import type { HookSpec, HookSplice } from "../model/hooks.ts";
import { Tensor } from "../tensor/tensor.ts";
import type { Sae } from "./sae.ts";

/** The SAE's hook points, in the order they fire (SAELens' names). */
export const SAE_HOOK_NAMES = [
  "hook_sae_input",
  "hook_sae_acts_pre",
  "hook_sae_acts_post",
  "hook_sae_recons",
  "hook_sae_error",
] as const;
export type SaeHookName = (typeof SAE_HOOK_NAMES)[number];

/** Full name of one of an SAE's hook points, e.g. `blocks.2.hook_resid_pre.hook_sae_acts_post`. */
export function saeHookName(sae: Sae, hook: SaeHookName): string {
  return `${sae.cfg.hookName}.${hook}`;
}

export interface SaeSpliceOptions {
  /** Add the error term x − x̂ (then, with nothing edited, the output is exactly the model's). */
  useErrorTerm?: boolean;
}

/** An SAE as a module spliced into its hook point (RunOptions.splices / GenerateOptions.splices). */
export function saeSplice(sae: Sae, opts: SaeSpliceOptions = {}): HookSplice {
  const { dIn, dSae } = sae.cfg;
  return {
    hook: sae.cfg.hookName,
    hookNames: SAE_HOOK_NAMES,
    run(act, fire) {
      if (act.size % dIn !== 0) {
        throw new Error(
          `${sae.cfg.hookName} is [${act.shape.join(", ")}], which does not split into rows of d_in ${dIn}`,
        );
      }
      const rows = act.size / dIn;
      // [batch, pos] (hook_z's [batch, pos, head, d_head] is read flattened over heads).
      const lead = act.shape.slice(0, sae.cfg.reshapeActivations === "hook_z" ? -2 : -1);
      const x = act.data;
      const input = fire("hook_sae_input", new Tensor(x.slice(), [...lead, dIn])).data;
      const { pre, gate } = sae.preActivations(input, rows);
      const pre0 = opts.useErrorTerm ? pre.slice() : null;
      const preT = fire("hook_sae_acts_pre", new Tensor(pre, [...lead, dSae])).data;
      const post = sae.activate(preT, gate, rows);
      const post0 = opts.useErrorTerm ? post.slice() : null;
      const postT = fire("hook_sae_acts_post", new Tensor(post, [...lead, dSae])).data;
      const recons = fire("hook_sae_recons", new Tensor(sae.decode(postT, rows), [...lead, dIn])).data;
      if (!opts.useErrorTerm) return new Tensor(recons, act.shape);

      // The SAE without its hooks: reuse what was computed before a hook could change it.
      const cleanPost = !sameValues(input, x)
        ? sae.encode(x, rows).post
        : sameValues(preT, pre0!)
          ? post0!
          : sae.activate(pre0!, gate, rows);
      const cleanRecons = sae.decode(cleanPost, rows);
      const error0 = new Float32Array(x.length);
      for (let i = 0; i < x.length; i++) error0[i] = x[i] - cleanRecons[i];
      const error = fire("hook_sae_error", new Tensor(error0.slice(), [...lead, dIn])).data;
      // x̂ + error, written as x + (x̂ − x̂_clean) + (error − error_clean) so that it is x itself when
      // no hook changed anything (float32 x̂ + (x − x̂) need not round back to x).
      const out = new Float32Array(x.length);
      for (let i = 0; i < x.length; i++)
        out[i] = x[i] + (recons[i] - cleanRecons[i]) + (error[i] - error0[i]);
      return new Tensor(out, act.shape);
    },
  };
}

function sameValues(a: Float32Array, b: Float32Array): boolean {
  if (a === b) return true;
  for (let i = 0; i < a.length; i++)
    if (a[i] !== b[i] && !(Number.isNaN(a[i]) && Number.isNaN(b[i]))) return false;
  return true;
}

/** Feature edits at every position: clamp features to values (steering), or to 0 (ablation). */
export interface FeatureEdits {
  /** Feature → the activation it is clamped to. */
  steer?: ReadonlyMap<number, number>;
  ablate?: readonly number[];
}

/**
 * A hook on the SAE's `hook_sae_acts_post` that clamps features (steer FEATURE=VALUE, ablate FEATURE =
 * clamp to 0) at every position. Use it with `saeSplice(sae, { useErrorTerm: true })`, so that only
 * the edited features' decoder directions change the activation.
 */
export function featureEditHook(sae: Sae, edits: FeatureEdits): HookSpec {
  const { dSae } = sae.cfg;
  const clamp = new Map<number, number>(edits.steer ?? []);
  for (const f of edits.ablate ?? []) clamp.set(f, 0);
  for (const [f, v] of clamp) {
    if (!Number.isInteger(f) || f < 0 || f >= dSae) {
      throw new Error(`Feature ${f} is out of range: this SAE has features 0..${dSae - 1}`);
    }
    if (!Number.isFinite(v)) throw new Error(`Feature ${f} cannot be steered to ${v}: give a finite number`);
  }
  return [
    saeHookName(sae, "hook_sae_acts_post"),
    (acts) => {
      for (let o = 0; o < acts.size; o += dSae) for (const [f, v] of clamp) acts.data[o + f] = v;
    },
  ];
}
