import type { Tensor } from "../tensor/tensor.ts";
import { actName, asLayout, type HookLayout, type HookModel } from "./hook-points.ts";

/**
 * Activations recorded by `runWithCache`, keyed by TransformerLens hook name. Analyses over a cache
 * (accumulated residual, head results, ...) live in src/analysis and take the cache plus the model.
 */
export class ActivationCache {
  readonly nLayers: number;
  private readonly layout: HookLayout;

  constructor(
    private readonly store: Map<string, Tensor>,
    /** Real (unpadded) length of each prompt; its final real position is `lengths[b] - 1`. */
    readonly lengths: readonly number[],
    /** The model's config (its hook points); a bare layer count means a GPT-2 of that depth. */
    model: HookModel,
  ) {
    this.layout = asLayout(model);
    this.nLayers = this.layout.nLayers;
  }

  get names(): string[] {
    return [...this.store.keys()];
  }

  has(name: string): boolean {
    return this.store.has(name);
  }

  /** `get("blocks.3.hook_resid_pre")` or `get("resid_pre", 3)`. */
  get(name: string, layer?: number): Tensor {
    // A full name held here is served as is (also a spliced module's, e.g. `...hook_sae_acts_post`).
    const held = layer === undefined ? this.store.get(name) : undefined;
    if (held) return held;
    const full = actName(name, layer, this.layout);
    const t = this.store.get(full);
    if (!t) {
      throw new Error(
        `"${full}" is not in this cache. Run with a names filter that includes it (cached: ${this.store.size} hooks).`,
      );
    }
    return t;
  }

  entries(): IterableIterator<[string, Tensor]> {
    return this.store.entries();
  }

  /** Final real position of each prompt. */
  finalPositions(): number[] {
    return this.lengths.map((n) => n - 1);
  }
}
