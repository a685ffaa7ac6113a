/** Random attribution graphs shaped like real ones, for the graph tests. */
import type { ActiveFeature, AttributionGraph } from "../../src/graphs/attribution-graph.ts";
import { nodeRanges } from "../../src/graphs/attribution-graph.ts";
import { mulberry32 } from "../../src/util/random.ts";

/** A random graph shaped like a real one: edges only from a lower level (token < layer 0 < … < logits). */
export function randomGraph(seed: number, nLayers: number, nPos: number, nFeatures: number, nLogits: number) {
  const rng = mulberry32(seed);
  const features: ActiveFeature[] = [];
  for (let layer = 0; layer < nLayers; layer++) {
    for (let pos = 0; pos < nPos; pos++) {
      for (let f = 0; f < 6; f++) {
        if (rng() < nFeatures / (nLayers * nPos * 6))
          features.push({ layer, pos, feature: 100 + f, activation: rng() * 3 });
      }
    }
  }
  const probs = Array.from({ length: nLogits }, () => rng());
  const sum = probs.reduce((a, b) => a + b, 0);
  const partial = {
    nLayers,
    inputTokens: Array.from({ length: nPos }, (_, i) => 100 + i),
    features,
    logitTokens: Array.from({ length: nLogits }, (_, i) => 200 + i),
    logitProbabilities: probs.map((p) => (0.9 * p) / sum),
  };
  const r = nodeRanges(partial);
  const n = r.nNodes;
  const level = (i: number) => {
    if (i < r.errorStart) return 1 + features[i].layer;
    if (i < r.tokenStart) return 1 + Math.floor((i - r.errorStart) / nPos);
    if (i < r.logitStart) return 0;
    return nLayers + 1;
  };
  const pos = (i: number) => {
    if (i < r.errorStart) return features[i].pos;
    if (i < r.tokenStart) return (i - r.errorStart) % nPos;
    if (i < r.logitStart) return i - r.tokenStart;
    return nPos - 1;
  };
  const A = new Float32Array(n * n);
  // rows of features and logits only (errors and tokens are never targets); sources earlier in level and position
  for (let t = 0; t < n; t++) {
    if (t >= r.errorStart && t < r.logitStart) continue;
    for (let s = 0; s < n; s++) {
      if (level(s) < level(t) && pos(s) <= pos(t) && rng() < 0.6)
        A[t * n + s] = (rng() - 0.5) * 4 * rng() ** 3;
    }
  }
  return { ...partial, adjacency: A } as AttributionGraph;
}
