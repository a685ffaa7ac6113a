/**
 * Pruning an attribution graph and its two scores, with circuit-tracer's semantics (`prune_graph`,
 * `compute_graph_scores`). Pure functions of the graph: nothing here runs a model.
 *
 * Â is |A| with each row divided by its sum (rows summing to 0 stay 0). A node's influence on the output is
 * w·(Â + Â² + …) with w the logit probabilities on the logit rows; the graph is acyclic, so the series ends
 * after at most depth terms, exactly (a product through a structural zero is zero). Â is never materialised:
 * (w·Â)_j = Σ_i (w_i / rowsum_i)·|A_ij|, one pass over A per term.
 */
import { type AttributionGraph, checkGraph, logitWeights } from "./attribution-graph.ts";

/** circuit-tracer clamps a row sum to this before dividing by it. */
const MIN_ROW_SUM = 1e-10;
/** Terms of the series before it is declared divergent (the graph then has a cycle). */
const MAX_TERMS = 1000;

/** 1 / max(Σ_j |A_ij|, 1e-10) of every row i, over the entries `keep` allows (both ends kept). */
export function rowScales(adjacency: Float32Array, n: number, keep?: Uint8Array): Float64Array {
  const scales = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    let sum = 0;
    if (!keep || keep[i]) {
      const row = i * n;
      for (let j = 0; j < n; j++) if (!keep || keep[j]) sum += Math.abs(adjacency[row + j]);
    }
    scales[i] = 1 / Math.max(sum, MIN_ROW_SUM);
  }
  return scales;
}

/**
 * w·(Â + Â² + …) with Â = diag(scales)·|A| restricted to the kept nodes. Throws if the series does not
 * vanish within 1000 terms (a cycle: an attribution graph never has one).
 */
export function seriesInfluence(
  adjacency: Float32Array,
  n: number,
  weights: Float64Array,
  opts: { scales?: Float64Array; keep?: Uint8Array } = {},
): Float64Array {
  const scales = opts.scales ?? rowScales(adjacency, n, opts.keep);
  const keep = opts.keep;
  const influence = new Float64Array(n);
  let current = weights;
  for (let term = 0; ; term++) {
    const next = new Float64Array(n);
    let any = false;
    for (let i = 0; i < n; i++) {
      const c = current[i];
      if (c === 0 || (keep && !keep[i])) continue;
      const ci = c * scales[i];
      const row = i * n;
      for (let j = 0; j < n; j++) {
        const a = adjacency[row + j];
        if (a !== 0 && (!keep || keep[j])) next[j] += ci * Math.abs(a);
      }
    }
    for (let j = 0; j < n; j++) {
      if (next[j] !== 0) {
        any = true;
        influence[j] += next[j];
      }
    }
    if (!any) return influence;
    if (term >= MAX_TERMS) {
      throw new Error(`influence did not vanish after ${MAX_TERMS} terms: the graph has a cycle`);
    }
    current = next;
  }
}

/**
 * The score at which the scores sorted high to low first reach `threshold` of their total (circuit-tracer's
 * `find_threshold`): keeping every score ≥ it keeps that share of the total. `zeros` more scores of 0 sit at
 * the end of the order (so the edge scores' many zeros need not be listed).
 */
export function findThreshold(scores: ArrayLike<number>, threshold: number, zeros = 0): number {
  return thresholdOfSorted(Float64Array.from(scores).sort(), threshold, zeros);
}

/** `findThreshold` of scores already sorted low to high (the edge scores are sorted in place, not copied). */
function thresholdOfSorted(ascending: Float32Array | Float64Array, threshold: number, zeros: number): number {
  if (ascending.length + zeros === 0) throw new Error("findThreshold: no scores");
  let total = 0;
  for (const s of ascending) total += s;
  let cumulative = 0;
  for (let k = ascending.length - 1; k >= 0; k--) {
    cumulative += ascending[k];
    if (cumulative / total >= threshold) return ascending[k];
  }
  // Past every non-zero score: a zero if there are any, else the last (smallest) score.
  return zeros > 0 ? 0 : ascending[0];
}

/** circuit-tracer's defaults: the nodes holding 80% of the influence, then the edges holding 98%. */
export const DEFAULT_NODE_THRESHOLD = 0.8;
export const DEFAULT_EDGE_THRESHOLD = 0.98;

export interface PruneOptions {
  /** Keep the nodes holding this share of the total influence (default 0.8). */
  nodeThreshold?: number;
  /** Then keep the edges holding this share of the total edge influence (default 0.98). */
  edgeThreshold?: number;
}

export interface PruneResult {
  /** 1 for a kept node, matrix order. Tokens and logits are always kept. */
  nodeMask: Uint8Array;
  /** [n, n], 1 for a kept edge (rows targets, columns sources). */
  edgeMask: Uint8Array;
  /** Each node's influence on the logits, unpruned graph. */
  nodeInfluence: Float64Array;
  /** Share of the total influence held by the nodes at least as influential as this one (0..1]. */
  cumulativeScores: Float64Array;
}

function checkThreshold(name: string, value: number): void {
  if (!(value >= 0 && value <= 1)) throw new Error(`${name} must be between 0 and 1, got ${value}`);
}

/** circuit-tracer's `prune_graph`: node mask by influence, edge mask by edge influence, then the clean-up. */
export function pruneGraph(graph: AttributionGraph, opts: PruneOptions = {}): PruneResult {
  const nodeThreshold = opts.nodeThreshold ?? DEFAULT_NODE_THRESHOLD;
  const edgeThreshold = opts.edgeThreshold ?? DEFAULT_EDGE_THRESHOLD;
  checkThreshold("node threshold", nodeThreshold);
  checkThreshold("edge threshold", edgeThreshold);
  const ranges = checkGraph(graph);
  const n = ranges.nNodes;
  const A = graph.adjacency;
  const weights = logitWeights(graph);

  const nodeInfluence = seriesInfluence(A, n, weights);
  const nodeCut = findThreshold(nodeInfluence, nodeThreshold);
  const nodeMask = new Uint8Array(n);
  for (let i = 0; i < n; i++) nodeMask[i] = i >= ranges.tokenStart || nodeInfluence[i] >= nodeCut ? 1 : 0;

  // Edge influence on the graph of the kept nodes: Â'_ij · (influence'_i + w_i).
  const scales = rowScales(A, n, nodeMask);
  const prunedInfluence = seriesInfluence(A, n, weights, { scales, keep: nodeMask });
  // float32 like circuit-tracer's matrix: the cut is taken from the same stored values it is compared with.
  const edgeScores = new Float32Array(n * n);
  for (let i = 0; i < n; i++) {
    if (!nodeMask[i]) continue;
    const rowWeight = scales[i] * (prunedInfluence[i] + weights[i]);
    if (rowWeight === 0) continue;
    for (let j = 0; j < n; j++) {
      const a = A[i * n + j];
      if (a !== 0 && nodeMask[j]) edgeScores[i * n + j] = Math.abs(a) * rowWeight;
    }
  }
  const nonzero = edgeScores.filter((s) => s !== 0).sort();
  const edgeCut = thresholdOfSorted(nonzero, edgeThreshold, n * n - nonzero.length);
  const edgeMask = new Uint8Array(n * n);
  for (let k = 0; k < n * n; k++) edgeMask[k] = edgeScores[k] >= edgeCut ? 1 : 0;

  // Features and errors need an outgoing edge, features an incoming one; removing a node removes its
  // edges, which can strand others, so repeat until nothing changes (at most depth rounds). Row-major passes
  // only: a column scan per node would stride through the whole matrix.
  const hasOut = new Uint8Array(n);
  const hasIn = new Uint8Array(n);
  for (;;) {
    hasOut.fill(0);
    hasIn.fill(0);
    for (let t = 0; t < n; t++) {
      const row = t * n;
      for (let s = 0; s < n; s++) {
        if (edgeMask[row + s]) {
          hasOut[s] = 1;
          hasIn[t] = 1;
        }
      }
    }
    let changed = false;
    for (let i = 0; i < ranges.tokenStart; i++) {
      if (nodeMask[i] && (!hasOut[i] || (i < ranges.nFeatures && !hasIn[i]))) {
        nodeMask[i] = 0;
        changed = true;
      }
    }
    if (!changed) break;
    // as circuit-tracer: once a round removed something, every dropped node's edges go (rows and columns)
    for (let t = 0; t < n; t++) {
      const row = t * n;
      if (!nodeMask[t]) edgeMask.fill(0, row, row + n);
      else for (let s = 0; s < n; s++) if (!nodeMask[s]) edgeMask[row + s] = 0;
    }
  }

  return { nodeMask, edgeMask, nodeInfluence, cumulativeScores: cumulativeShares(nodeInfluence) };
}

/** For each node, the share of the total held by the scores ≥ its own in the high-to-low order. */
export function cumulativeShares(scores: Float64Array): Float64Array {
  const order = Array.from(scores.keys()).sort((a, b) => scores[b] - scores[a] || a - b);
  let total = 0;
  for (const s of scores) total += s;
  const out = new Float64Array(scores.length);
  let cumulative = 0;
  for (const i of order) {
    cumulative += scores[i];
    out[i] = cumulative / total;
  }
  return out;
}

export interface GraphScores {
  /** Share of the influence on the logits that reaches them from the tokens rather than the error nodes. */
  replacementScore: number;
  /** Influence-weighted share of each node's incoming edge mass that does not come from error nodes. */
  completenessScore: number;
}

/** circuit-tracer's `compute_graph_scores` on the unpruned graph. */
export function graphScores(graph: AttributionGraph): GraphScores {
  const ranges = checkGraph(graph);
  const n = ranges.nNodes;
  const A = graph.adjacency;
  const weights = logitWeights(graph);
  const scales = rowScales(A, n);
  const influence = seriesInfluence(A, n, weights, { scales });
  let tokenInfluence = 0;
  for (let i = ranges.tokenStart; i < ranges.logitStart; i++) tokenInfluence += influence[i];
  let errorInfluence = 0;
  for (let i = ranges.errorStart; i < ranges.tokenStart; i++) errorInfluence += influence[i];

  let weighted = 0;
  let total = 0;
  for (let i = 0; i < n; i++) {
    let errorShare = 0;
    for (let j = ranges.errorStart; j < ranges.tokenStart; j++) errorShare += Math.abs(A[i * n + j]);
    const output = influence[i] + weights[i];
    weighted += (1 - errorShare * scales[i]) * output;
    total += output;
  }
  return {
    replacementScore: tokenInfluence / (tokenInfluence + errorInfluence),
    completenessScore: weighted / total,
  };
}
