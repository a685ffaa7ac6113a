/**
 * MLP neuron activations (`blocks.{l}.mlp.hook_post`, [batch, pos, d_mlp]) for a batch of token lists,
 * computing no logits and no blocks past the last layer asked for.
 */
import type { HookedTransformer } from "../model/hooked-transformer.ts";

/**
 * What the indexer needs from a model (a HookedTransformer, or a test double): its config, a cached run and,
 * to cut the corpus into contexts, its tokenizer (GPT-2's when absent).
 */
export type MlpModel = Pick<HookedTransformer, "cfg" | "runWithCache"> & {
  tokenizer?: Pick<HookedTransformer["tokenizer"], "encode" | "bosToken">;
};

export interface MlpBatch {
  /** Per requested layer (same order), activations [batch, pos, d_mlp] with right padding. */
  actsBPM: Float32Array[];
  pos: number;
  lengths: number[];
}

export function mlpPostName(layer: number): string {
  return `blocks.${layer}.mlp.hook_post`;
}

export function runMlpPost(
  model: MlpModel,
  tokens: readonly (readonly number[])[],
  layers: readonly number[],
): MlpBatch {
  const wanted = new Set(layers.map(mlpPostName));
  const last = Math.max(...layers);
  const out = model.runWithCache(tokens, {
    namesFilter: (name: string) => wanted.has(name),
    logits: "none",
    stopAtLayer: last + 1 < model.cfg.nLayers ? last + 1 : undefined,
  });
  const actsBPM = layers.map((l) => out.cache.get(mlpPostName(l)).data);
  const pos = out.cache.get(mlpPostName(layers[0])).shape[1];
  return { actsBPM, pos, lengths: out.lengths };
}

/** Check and default a layer list against the model's depth. */
export function resolveLayers(layers: readonly number[] | undefined, nLayers: number): number[] {
  if (!layers || layers.length === 0) return Array.from({ length: nLayers }, (_, l) => l);
  const sorted = [...new Set(layers)].sort((a, b) => a - b);
  for (const l of sorted) {
    if (!Number.isInteger(l) || l < 0 || l >= nLayers) {
      throw new Error(`Layer ${l} does not exist: this model has layers 0..${nLayers - 1}.`);
    }
  }
  return sorted;
}
