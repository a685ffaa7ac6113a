/**
 * An attribution graph as plain data, in circuit-tracer's matrix order: the active transcoder features sorted
 * by (layer, position, feature), then one MLP-reconstruction error node per (layer, position) layer-major,
 * then one token-embedding node per position, then the logit nodes. `adjacency` is dense [n, n], row-major,
 * rows targets and columns sources: `adjacency[t * n + s]` is the direct effect of node s on node t.
 * Node ids are circuit-tracer's front-end ids, so a graph written here opens in its viewer.
 */

export interface ActiveFeature {
  layer: number;
  /** Token position (ctx_idx). */
  pos: number;
  /** Index of the feature in its layer's transcoder. */
  feature: number;
  activation: number;
}

export interface AttributionGraph {
  nLayers: number;
  /** The prompt's token ids, one per position. */
  inputTokens: readonly number[];
  /** Sorted by (layer, pos, feature); see `sortFeatures`. */
  features: readonly ActiveFeature[];
  /** Token ids of the logit nodes, the first being the target logit. */
  logitTokens: readonly number[];
  /** The model's probability of each logit token at the last position (the pruning weights). */
  logitProbabilities: readonly number[];
  /** [nNodes, nNodes], rows targets, columns sources. */
  adjacency: Float32Array;
}

export type NodeKind = "feature" | "error" | "token" | "logit";

/** circuit-tracer's front-end `feature_type` of each kind. */
export const FEATURE_TYPE: Record<NodeKind, string> = {
  feature: "cross layer transcoder",
  error: "mlp reconstruction error",
  token: "embedding",
  logit: "logit",
};

/** One node as `--raw`'s nodes.json holds it (matrix order). */
export interface GraphNode {
  node_id: string;
  feature_type: string;
  /** The layer as circuit-tracer's front end writes it: "E" for tokens, n_layers + 1 for logits. */
  layer: string;
  ctx_idx: number;
  /** Feature index; -1 for errors; the position for tokens; the token id for logits. */
  feature: number;
  /** A feature's activation; null for the other kinds. */
  activation: number | null;
}

/** Where each kind of node starts in the matrix order. */
export interface NodeRanges {
  nFeatures: number;
  errorStart: number;
  tokenStart: number;
  logitStart: number;
  nNodes: number;
}

export function nodeRanges(
  graph: Pick<AttributionGraph, "nLayers" | "inputTokens" | "features" | "logitTokens">,
): NodeRanges {
  const nPos = graph.inputTokens.length;
  const nFeatures = graph.features.length;
  const errorStart = nFeatures;
  const tokenStart = errorStart + graph.nLayers * nPos;
  const logitStart = tokenStart + nPos;
  return { nFeatures, errorStart, tokenStart, logitStart, nNodes: logitStart + graph.logitTokens.length };
}

function compareFeatures(a: ActiveFeature, b: ActiveFeature): number {
  return a.layer - b.layer || a.pos - b.pos || a.feature - b.feature;
}

/** The features in circuit-tracer's order: by layer, then position, then feature index. */
export function sortFeatures(features: readonly ActiveFeature[]): ActiveFeature[] {
  return [...features].sort(compareFeatures);
}

/** Throws a clear error if `graph` is not consistent (sizes, order, ranges); returns its ranges. */
export function checkGraph(graph: AttributionGraph): NodeRanges {
  const ranges = nodeRanges(graph);
  const nPos = graph.inputTokens.length;
  if (!Number.isInteger(graph.nLayers) || graph.nLayers < 1) {
    throw new Error(`attribution graph: nLayers must be a positive integer, got ${graph.nLayers}`);
  }
  if (nPos === 0) throw new Error("attribution graph: the prompt has no tokens");
  if (graph.logitTokens.length === 0)
    throw new Error("attribution graph: there must be at least one logit node");
  if (graph.logitProbabilities.length !== graph.logitTokens.length) {
    throw new Error(
      `attribution graph: ${graph.logitProbabilities.length} logit probabilities for ${graph.logitTokens.length} logit tokens`,
    );
  }
  if (graph.adjacency.length !== ranges.nNodes * ranges.nNodes) {
    throw new Error(
      `attribution graph: adjacency has ${graph.adjacency.length} entries but ${ranges.nNodes} nodes need ${ranges.nNodes}²`,
    );
  }
  graph.features.forEach((f, i) => {
    if (f.layer < 0 || f.layer >= graph.nLayers || f.pos < 0 || f.pos >= nPos || f.feature < 0) {
      throw new Error(
        `attribution graph: feature ${i} (layer ${f.layer}, pos ${f.pos}, feature ${f.feature}) is out of range`,
      );
    }
    if (i > 0 && compareFeatures(graph.features[i - 1], f) >= 0) {
      throw new Error(
        `attribution graph: features must be sorted by (layer, pos, feature) without repeats (use sortFeatures); feature ${i} is not`,
      );
    }
  });
  return ranges;
}

/** The kind of the node at matrix index `i`. */
export function nodeKind(ranges: NodeRanges, i: number): NodeKind {
  if (i < ranges.errorStart) return "feature";
  if (i < ranges.tokenStart) return "error";
  if (i < ranges.logitStart) return "token";
  return "logit";
}

/** Every node in matrix order, with circuit-tracer's front-end ids. */
export function graphNodes(graph: AttributionGraph): GraphNode[] {
  const ranges = checkGraph(graph);
  const nPos = graph.inputTokens.length;
  const lastPos = nPos - 1;
  const nodes: GraphNode[] = graph.features.map((f) => ({
    node_id: `${f.layer}_${f.feature}_${f.pos}`,
    feature_type: FEATURE_TYPE.feature,
    layer: String(f.layer),
    ctx_idx: f.pos,
    feature: f.feature,
    activation: f.activation,
  }));
  for (let layer = 0; layer < graph.nLayers; layer++) {
    for (let pos = 0; pos < nPos; pos++) {
      nodes.push({
        node_id: `0_${layer}_${pos}`,
        feature_type: FEATURE_TYPE.error,
        layer: String(layer),
        ctx_idx: pos,
        feature: -1,
        activation: null,
      });
    }
  }
  graph.inputTokens.forEach((token, pos) => {
    nodes.push({
      node_id: `E_${token}_${pos}`,
      feature_type: FEATURE_TYPE.token,
      layer: "E",
      ctx_idx: pos,
      feature: pos,
      activation: null,
    });
  });
  const logitLayer = String(graph.nLayers + 1);
  for (const token of graph.logitTokens) {
    nodes.push({
      node_id: `${logitLayer}_${token}_${lastPos}`,
      feature_type: FEATURE_TYPE.logit,
      layer: logitLayer,
      ctx_idx: lastPos,
      feature: token,
      activation: null,
    });
  }
  if (nodes.length !== ranges.nNodes) throw new Error("graphNodes: node count disagrees with the ranges");
  return nodes;
}

/** The pruning weights: the logit probabilities on the logit rows, zero elsewhere (float64, length n). */
export function logitWeights(graph: AttributionGraph): Float64Array {
  const ranges = nodeRanges(graph);
  const w = new Float64Array(ranges.nNodes);
  graph.logitProbabilities.forEach((p, i) => {
    w[ranges.logitStart + i] = p;
  });
  return w;
}
