/** Read access to a finished (or checkpointed) neuron index, per (layer, neuron), or feature index, per feature. */
import { type IndexManifest, type IndexSettings, readIndexState } from "./index-store.ts";
import { compareExamples, type Example, type NeuronStats } from "./neuron-stats.ts";

/** Examples drawn uniformly from one activation band of a unit. */
export interface QuantileGroup {
  lo: number;
  hi: number;
  /** Tokens in the band's bins (null when it includes the bin that also counts zeros). */
  tokens: number | null;
  examples: { contextId: number; position: number }[];
}

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
    private readonly samples: NeuronStats | null,
    private readonly contexts: Map<number, Uint32Array>,
  ) {}

  static open(dir: string): NeuronIndex {
    const { manifest, stats, samples, contexts } = readIndexState(dir);
    return new NeuronIndex(dir, manifest, stats, samples, contexts);
  }

  /** The SAE a feature index was built for (null for a neuron index). */
  get sae(): IndexSettings["sae"] | null {
    return this.manifest.settings.sae ?? null;
  }

  /** The transcoder set a transcoder feature index was built for (null otherwise). */
  get transcoders(): IndexSettings["transcoders"] | null {
    return this.manifest.settings.transcoders ?? null;
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

  /**
   * The unit number of transcoder feature `feature` of layer `layer` (for `unitSummary`-backed reads and
   * `quantileGroups`), with a clear error for a layer or feature the index does not hold.
   */
  transcoderUnit(layer: number, feature: number): number {
    const tcs = this.transcoders;
    if (!tcs)
      throw new Error(
        `${this.dir} is not a transcoder feature index: build one with index --transcoders DIR.`,
      );
    const l = this.layers.indexOf(layer);
    if (l < 0) throw new Error(`Index ${this.dir} has no layer ${layer} (it has ${this.layers.join(", ")}).`);
    if (!Number.isInteger(feature) || feature < 0 || feature >= tcs.dTranscoder) {
      throw new Error(
        `Feature ${feature} does not exist: the transcoders have features 0..${tcs.dTranscoder - 1}.`,
      );
    }
    return l * tcs.dTranscoder + feature;
  }

  /** A transcoder feature index's summary of feature `feature` of layer `layer`. */
  transcoderFeatureSummary(layer: number, feature: number): NeuronSummary {
    return this.unitSummary(this.transcoderUnit(layer, feature));
  }

  summary(layer: number, neuron: number): NeuronSummary {
    if (this.transcoders) {
      throw new Error(
        `${this.dir} is a transcoder feature index (${this.transcoders.path}): open features with \`feature --transcoders\`.`,
      );
    }
    if (this.sae) {
      throw new Error(
        `${this.dir} is a feature index (SAE ${this.sae.path}): open features with \`feature\`.`,
      );
    }
    return this.unitSummary(this.slot(layer, neuron));
  }

  /** A feature index's summary of SAE feature `feature`. */
  featureSummary(feature: number): NeuronSummary {
    const sae = this.sae;
    if (!sae) throw new Error(`${this.dir} is a neuron index; build a feature index with index --sae DIR.`);
    if (!Number.isInteger(feature) || feature < 0 || feature >= sae.dSae) {
      throw new Error(`Feature ${feature} does not exist: the SAE has features 0..${sae.dSae - 1}.`);
    }
    return this.unitSummary(feature);
  }

  /**
   * Quantile groups of unit g: its activation range (0, max] cut into `bands` equal intervals, each with up
   * to the index's band-sample count of examples drawn uniformly from it (band-samples.ts). A histogram bin
   * belongs to the band holding its lower edge, so band edges are rounded to the histogram's bins.
   */
  quantileGroups(g: number, bands: number): QuantileGroup[] | null {
    const samples = this.samples;
    if (!samples) return null;
    const s = this.stats;
    const { lo, hi, bins } = s.hist;
    const width = (hi - lo) / bins;
    const top = s.top(g);
    const max = top.length > 0 ? top[0].value : 0;
    if (!(max > 0)) return [];
    const groups = Array.from({ length: bands }, (_, b) => ({
      lo: (b * max) / bands,
      hi: ((b + 1) * max) / bands,
      tokens: 0,
      candidates: [] as Example[],
    }));
    for (let bin = 1; bin <= bins + 1; bin++) {
      const lower = lo + (bin - 1) * width;
      // Bin 1 starts at lo, but band samples are positive activations only.
      const band = Math.min(bands - 1, Math.max(0, Math.floor((Math.max(lower, 0) / max) * bands)));
      const slot = g * s.binsTotal + bin;
      const kept = samples.top(slot);
      if (kept.length === 0) continue;
      // Tokens in the bin that are positive: the bin's count, except bin 1 which also holds the zeros.
      groups[band].tokens += bin === 1 && lo <= 0 ? Number.NaN : s.histogram[slot];
      groups[band].candidates.push(...kept);
    }
    return groups.map((grp) => ({
      lo: grp.lo,
      hi: grp.hi,
      tokens: Number.isNaN(grp.tokens) ? null : grp.tokens,
      // The highest scores of the union: a uniform sample of the band (scores are in `value`).
      examples: grp.candidates
        .sort(compareExamples)
        .slice(0, samples.k)
        .map((e) => ({ contextId: e.contextId, position: e.position })),
    }));
  }

  private unitSummary(g: number): NeuronSummary {
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
