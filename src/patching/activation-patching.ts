/**
 * Activation patching: patch clean activations into the corrupted run and measure how much of the
 * clean behaviour comes back. `exact` (default) is the fast path; `straightforward` is the reference
 * (one full forward per patch, as TransformerLens does).
 */
import type { HookedTransformer } from "../model/hooked-transformer.ts";
import { patchFast } from "./fast-patching.ts";
import { patchFeaturesExact } from "./feature-patching.ts";
import { patchStraightforward } from "./straightforward.ts";
import type { PatchSweepOptions } from "./sweep.ts";
import type { PatchMethod, PatchResult } from "./types.ts";

export type { PatchSweepOptions } from "./sweep.ts";

export function activationPatching(
  model: HookedTransformer,
  opts: PatchSweepOptions & { method?: PatchMethod },
): Promise<PatchResult> {
  if (opts.method === "straightforward") return patchStraightforward(model, opts);
  // SAE features: the SAE spliced in, each patch an exact sum of decoder rows (feature-patching.ts).
  return opts.target.kind === "features" ? patchFeaturesExact(model, opts) : patchFast(model, opts);
}
