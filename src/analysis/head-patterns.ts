/**
 * Attention patterns of chosen heads on one prompt, as [dest][src] rows (the shape attention views take).
 * One cached forward that stops after the last layer asked for.
 */
import { headName } from "../model/component-names.ts";
import { blockHookName } from "../model/hook-points.ts";
import type { HookedTransformer } from "../model/hooked-transformer.ts";

export interface HeadRef {
  layer: number;
  head: number;
}

/** pattern[dest][src] of each head, in the order given. */
export function headPatterns(
  model: HookedTransformer,
  tokens: readonly number[],
  heads: readonly HeadRef[],
): number[][][] {
  if (heads.length === 0) return [];
  const { nLayers, nHeads } = model.cfg;
  for (const { layer, head } of heads) {
    if (
      !Number.isInteger(layer) ||
      layer < 0 ||
      layer >= nLayers ||
      !Number.isInteger(head) ||
      head < 0 ||
      head >= nHeads
    )
      throw new Error(
        `Head ${headName(layer, head)} does not exist: use layers 0..${nLayers - 1} and heads 0..${nHeads - 1}`,
      );
  }
  const names = [...new Set(heads.map((h) => blockHookName(h.layer, "attn.hook_pattern")))];
  const { cache } = model.runWithCache([tokens], {
    namesFilter: names,
    logits: "none",
    stopAtLayer: Math.max(...heads.map((h) => h.layer)) + 1,
  });
  const n = tokens.length;
  return heads.map(({ layer, head }) => {
    const pat = cache.get("pattern", layer).data; // [1, H, n, n]
    return Array.from({ length: n }, (_, q) =>
      Array.from(pat.subarray((head * n + q) * n, (head * n + q + 1) * n)),
    );
  });
}
