/** Read access to a finished (or checkpointed) neuron index, per (layer, neuron). */
import { type IndexManifest, readIndexState } from "./index-store.ts";
import type { Example, NeuronStats } from "./neuron-stats.ts";

export interface NeuronSummary {
  /** Fraction of indexed tokens with activation > 0. */
  density: number;
  tokens: number;
  /** Counts per bin: [underflow, bins..., overflow], with bin edges lo + i * (hi - lo) / bins. */
  histogram: { lo: number; hi: number; bins: number; counts: number[] };
  examples: Example[];
}

export class NeuronIndex {
  private constructor(
    readonly dir: string,
    readonly manifest: IndexManifest,
    private readonly stats: NeuronStats,
    private readonly contexts: Map<number, Uint32Array>,
  ) {}

  static open(dir: string): NeuronIndex {
    const { manifest, stats, contexts } = readIndexState(dir);
    return new NeuronIndex(dir, manifest, stats, contexts);
  }

  get layers(): number[] {
    return this.manifest.settings.layers;
  }

  /** Global neuron number in the store, with a clear error for a layer or neuron it does not hold. */
  private slot(layer: number, neuron: number): number {
    const { layers, dMlp } = this.manifest.settings;
    const l = layers.indexOf(layer);
    if (l < 0)
      throw new Error(
        `Index ${this.dir} has no layer ${layer} (it has ${layers.join(", ")}); index that layer with --layers.`,
      );
    if (!Number.isInteger(neuron) || neuron < 0 || neuron >= dMlp) {
      throw new Error(`Neuron ${neuron} does not exist: layers have neurons 0..${dMlp - 1}.`);
    }
    return l * dMlp + neuron;
  }

  summary(layer: number, neuron: number): NeuronSummary {
    const g = this.slot(layer, neuron);
    const s = this.stats;
    const counts = Array.from(s.histogram.subarray(g * s.binsTotal, (g + 1) * s.binsTotal));
    return {
      density: s.tokens > 0 ? s.positive[g] / s.tokens : 0,
      tokens: s.tokens,
      histogram: { ...s.hist, counts },
      examples: s.top(g),
    };
  }

  contextTokens(contextId: number): number[] {
    const toks = this.contexts.get(contextId);
    if (!toks)
      throw new Error(
        `Context ${contextId} is not stored in ${this.dir} (only contexts of top examples are).`,
      );
    return Array.from(toks);
  }
}
