/**
 * Running statistics for many neurons at once: the top-k activating (context, position, value) per
 * neuron, a fixed-bin activation histogram and the count of positive activations. All state lives in
 * flat typed arrays indexed by a global neuron number, so it is cheap to checkpoint, merge and scan.
 *
 * Examples are totally ordered (value descending, then context id ascending, then position ascending),
 * so the top-k set is a function of the examples seen, whatever the batching, sharding or resuming.
 */

export interface HistogramSpec {
  /** Lower edge of the first bin; smaller values (and NaN) go to an underflow bin. */
  lo: number;
  /** Upper edge of the last bin; values >= hi go to an overflow bin. */
  hi: number;
  bins: number;
}

/** Width 0.1 from -0.5 (GELU's minimum is about -0.17) to 9.5; larger values land in the overflow bin. */
export const DEFAULT_HISTOGRAM: HistogramSpec = { lo: -0.5, hi: 9.5, bins: 100 };

/** Context id marking an empty top-k slot. */
export const NO_CONTEXT = 0xffffffff;

export interface Example {
  contextId: number;
  position: number;
  value: number;
}

/** Rows of an activation block to scan, with the (context id, position) each row came from. */
export interface RowRefs {
  /** Row index into the activation block, for each real (non-padding) token. */
  rows: Int32Array;
  contextIds: Uint32Array;
  positions: Uint16Array;
  count: number;
}

/** Neurons per block of the scan: 16 floats = one cache line of each activation row. */
const NEURON_BLOCK = 16;

export class NeuronStats {
  readonly nNeurons: number;
  readonly k: number;
  readonly hist: HistogramSpec;
  /** Bins including underflow (index 0) and overflow (index bins + 1). */
  readonly binsTotal: number;
  /** Per neuron, k slots forming a min-heap under the example order (root = worst kept example). */
  readonly topValues: Float32Array;
  readonly topContexts: Uint32Array;
  readonly topPositions: Uint16Array;
  readonly topSize: Uint16Array;
  /** The value a new example must exceed to enter the neuron's top-k (-Infinity while not full). */
  readonly threshold: Float32Array;
  /** [nNeurons, binsTotal] */
  readonly histogram: Uint32Array;
  readonly positive: Uint32Array;
  tokens = 0;

  constructor(nNeurons: number, k: number, hist: HistogramSpec = DEFAULT_HISTOGRAM) {
    if (!Number.isInteger(k) || k < 1 || k > 65535)
      throw new Error(`top-k ${k} is out of range: use 1..65535.`);
    if (!(hist.hi > hist.lo) || !Number.isInteger(hist.bins) || hist.bins < 1) {
      throw new Error(`Bad histogram ${JSON.stringify(hist)}: need hi > lo and an integer bins >= 1.`);
    }
    this.nNeurons = nNeurons;
    this.k = k;
    this.hist = hist;
    this.binsTotal = hist.bins + 2;
    this.topValues = new Float32Array(nNeurons * k).fill(Number.NEGATIVE_INFINITY);
    this.topContexts = new Uint32Array(nNeurons * k).fill(NO_CONTEXT);
    this.topPositions = new Uint16Array(nNeurons * k);
    this.topSize = new Uint16Array(nNeurons);
    this.threshold = new Float32Array(nNeurons).fill(Number.NEGATIVE_INFINITY);
    this.histogram = new Uint32Array(nNeurons * this.binsTotal);
    this.positive = new Uint32Array(nNeurons);
  }

  /**
   * Scan one activation block `actsRW` [rows, width] for neurons [neuronOffset, neuronOffset + width).
   * Rows must come in increasing (context id, position) order and after every example seen before, so
   * an example equal to the k-th value loses the tie and a plain `>` against the threshold suffices.
   * Neurons go in blocks of 16 so each neuron's histogram row and heap stay in cache across the rows.
   */
  addBlock(actsRW: Float32Array, width: number, neuronOffset: number, refs: RowRefs): void {
    const { lo, hi, bins } = this.hist;
    const invWidth = bins / (hi - lo);
    const binsTotal = this.binsTotal;
    const histogram = this.histogram;
    const positive = this.positive;
    const threshold = this.threshold;
    const { rows, contextIds, positions, count } = refs;
    for (let j0 = 0; j0 < width; j0 += NEURON_BLOCK) {
      const j1 = Math.min(j0 + NEURON_BLOCK, width);
      for (let r = 0; r < count; r++) {
        const base = rows[r] * width;
        for (let j = j0; j < j1; j++) {
          const v = actsRW[base + j];
          const g = neuronOffset + j;
          histogram[g * binsTotal + histogramBin(v, lo, hi, bins, invWidth)]++;
          if (v > 0) positive[g]++;
          if (v > threshold[g]) this.insert(g, v, contextIds[r], positions[r]);
        }
      }
    }
  }

  /** Count tokens scanned (once per token, not per layer). */
  addTokens(n: number): void {
    this.tokens += n;
  }

  /** Offer an example to neuron g's top-k under the full order (used by merging). */
  offer(g: number, value: number, contextId: number, position: number): void {
    const k = this.k;
    if (this.topSize[g] < k) {
      this.insert(g, value, contextId, position);
      return;
    }
    const root = g * k;
    if (
      worse(this.topValues[root], this.topContexts[root], this.topPositions[root], value, contextId, position)
    ) {
      this.insert(g, value, contextId, position);
    }
  }

  /** Add an example known to beat neuron g's worst kept example (or the heap is not full). */
  private insert(g: number, value: number, contextId: number, position: number): void {
    const k = this.k;
    const base = g * k;
    const vals = this.topValues;
    const ctxs = this.topContexts;
    const poss = this.topPositions;
    let size = this.topSize[g];
    let i: number;
    if (size < k) {
      // Push at the end and sift up (towards the root = worst).
      i = size++;
      this.topSize[g] = size;
      while (i > 0) {
        const parent = (i - 1) >> 1;
        const p = base + parent;
        if (!worse(value, contextId, position, vals[p], ctxs[p], poss[p])) break;
        vals[base + i] = vals[p];
        ctxs[base + i] = ctxs[p];
        poss[base + i] = poss[p];
        i = parent;
      }
    } else {
      // Replace the root and sift down.
      i = 0;
      for (;;) {
        const left = 2 * i + 1;
        if (left >= size) break;
        let child = left;
        const right = left + 1;
        if (
          right < size &&
          worse(
            vals[base + right],
            ctxs[base + right],
            poss[base + right],
            vals[base + left],
            ctxs[base + left],
            poss[base + left],
          )
        ) {
          child = right;
        }
        const c = base + child;
        if (!worse(vals[c], ctxs[c], poss[c], value, contextId, position)) break;
        vals[base + i] = vals[c];
        ctxs[base + i] = ctxs[c];
        poss[base + i] = poss[c];
        i = child;
      }
    }
    vals[base + i] = value;
    ctxs[base + i] = contextId;
    poss[base + i] = position;
    this.threshold[g] = size < k ? Number.NEGATIVE_INFINITY : vals[base];
  }

  /** Neuron g's kept examples, best first. */
  top(g: number): Example[] {
    const out: Example[] = [];
    const base = g * this.k;
    for (let i = 0; i < this.topSize[g]; i++) {
      out.push({
        value: this.topValues[base + i],
        contextId: this.topContexts[base + i],
        position: this.topPositions[base + i],
      });
    }
    return out.sort(compareExamples);
  }

  /** Rewrite every neuron's heap as a best-first list (the stored layout); padding slots stay empty. */
  sortedArrays(): { values: Float32Array; contexts: Uint32Array; positions: Uint16Array } {
    const values = new Float32Array(this.topValues.length).fill(Number.NEGATIVE_INFINITY);
    const contexts = new Uint32Array(this.topContexts.length).fill(NO_CONTEXT);
    const positions = new Uint16Array(this.topPositions.length);
    for (let g = 0; g < this.nNeurons; g++) {
      const base = g * this.k;
      this.top(g).forEach((e, i) => {
        values[base + i] = e.value;
        contexts[base + i] = e.contextId;
        positions[base + i] = e.position;
      });
    }
    return { values, contexts, positions };
  }

  /** Load best-first lists (as written by `sortedArrays`); a list reversed is a valid min-heap. */
  loadSorted(values: Float32Array, contexts: Uint32Array, positions: Uint16Array): void {
    for (let g = 0; g < this.nNeurons; g++) {
      const base = g * this.k;
      let size = 0;
      while (size < this.k && contexts[base + size] !== NO_CONTEXT) size++;
      for (let i = 0; i < size; i++) {
        this.topValues[base + i] = values[base + size - 1 - i];
        this.topContexts[base + i] = contexts[base + size - 1 - i];
        this.topPositions[base + i] = positions[base + size - 1 - i];
      }
      this.topSize[g] = size;
      this.threshold[g] = size < this.k ? Number.NEGATIVE_INFINITY : this.topValues[base];
    }
  }

  /** Context ids referenced by any kept example. */
  referencedContexts(): Set<number> {
    const ids = new Set<number>();
    for (let g = 0; g < this.nNeurons; g++) {
      const base = g * this.k;
      for (let i = 0; i < this.topSize[g]; i++) ids.add(this.topContexts[base + i]);
    }
    return ids;
  }
}

/** Bin of v: 0 below lo (and NaN), bins + 1 at or above hi, else 1 + its bin of width (hi − lo) / bins. */
export function histogramBin(v: number, lo: number, hi: number, bins: number, invWidth: number): number {
  if (!(v >= lo)) return 0;
  if (v >= hi) return bins + 1;
  return Math.min(bins, ((v - lo) * invWidth + 1) | 0);
}

/** Is example a worse than example b (lower value; on ties, later context, then later position)? */
function worse(av: number, ac: number, ap: number, bv: number, bc: number, bp: number): boolean {
  if (av !== bv) return av < bv;
  if (ac !== bc) return ac > bc;
  return ap > bp;
}

/** Best first. */
export function compareExamples(a: Example, b: Example): number {
  if (a.value !== b.value) return b.value - a.value;
  if (a.contextId !== b.contextId) return a.contextId - b.contextId;
  return a.position - b.position;
}
