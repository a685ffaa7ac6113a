// Type-checked with `tsc --noEmit` against the declarations shipped in the tarball.
import { type ActivationCache, HookedTransformer, type PatchResult, activationPatching } from "circuitscope";
import { holmAdjust } from "circuitscope/analysis";
import { type ScoreMethod, SCORE_METHODS } from "circuitscope/circuits";
import type { PatchTarget } from "circuitscope/patching";

export async function study(name: string): Promise<number> {
  const model: HookedTransformer = await HookedTransformer.fromPretrained(name);
  const { cache }: { cache: ActivationCache } = model.runWithCache(["Once upon a time"]);
  const target: PatchTarget = { kind: "resid_pre" };
  const result: PatchResult = await activationPatching(model, {
    clean: ["Lily went to the park."],
    corrupted: ["Tim went to the park."],
    answers: { answer: 1, wrong: 2 },
    target,
  });
  const adjusted: number[] = holmAdjust([0.01, 0.04]);
  const method: ScoreMethod = SCORE_METHODS[1];
  if (method !== "eap-ig") throw new Error(method);
  return result.values[0] + adjusted[0] + cache.get("resid_post", 0).shape.length;
}
