/**
 * Quantile groups (as SAE-Vis and Neuronpedia show them): examples sampled uniformly from activation bands,
 * not only the top ones. One pass cannot know a unit's maximum, so samples are kept per histogram bin: in
 * each (unit, bin) the `perBand` tokens with the highest pseudo-random score of (unit, context, position).
 * The score depends on nothing but the token, so the kept set is the same whatever the batching, sharding
 * or resuming (merging is exact), and the union of some bins' samples, cut to the highest scores, is a
 * uniform sample of those bins together: a page groups bins into bands of the unit's own range.
 */
import { histogramBin, NeuronStats, type RowRefs } from "./neuron-stats.ts";

/** Histogram-free statistics: one slot per (unit, positive bin) keeping the best-scored examples. */
export function newBandSamples(nUnits: number, binsTotal: number, perBand: number): NeuronStats {
  return new NeuronStats(nUnits * binsTotal, perBand, { lo: 0, hi: 1, bins: 1 });
}

/** Uniform score in [0, 1) of one token for one unit (a 32-bit integer hash, float32-exact). */
export function sampleScore(unit: number, contextId: number, position: number): number {
  let h = Math.imul(unit ^ 0x9e3779b9, 0x85ebca6b);
  h = Math.imul(h ^ contextId ^ (h >>> 13), 0xc2b2ae35);
  h = Math.imul(h ^ position ^ (h >>> 16), 0x27d4eb2f);
  h ^= h >>> 15;
  // 24 bits: exactly representable in the float32 the store keeps.
  return (h >>> 8) / 16777216;
}

/**
 * Offer every positive activation of a block `actsRW` [rows, width] (units [unitOffset, unitOffset + width))
 * to its (unit, bin) slot, with bins as in `stats.hist` (the index's histogram).
 */
export function addBandSamples(
  samples: NeuronStats,
  hist: { lo: number; hi: number; bins: number },
  actsRW: Float32Array,
  width: number,
  unitOffset: number,
  refs: RowRefs,
): void {
  const { lo, hi, bins } = hist;
  const binsTotal = bins + 2;
  const invWidth = bins / (hi - lo);
  for (let r = 0; r < refs.count; r++) {
    const base = refs.rows[r] * width;
    for (let j = 0; j < width; j++) {
      const v = actsRW[base + j];
      if (!(v > 0)) continue;
      const bin = histogramBin(v, lo, hi, bins, invWidth);
      const unit = unitOffset + j;
      samples.offer(
        unit * binsTotal + bin,
        sampleScore(unit, refs.contextIds[r], refs.positions[r]),
        refs.contextIds[r],
        refs.positions[r],
      );
    }
  }
}
