/** A pruned front-end graph (circuit-tracer JSON) built by the project's own builders from a random graph. */
import { type FrontEndGraph, frontEndGraph } from "../../src/graphs/graph-files.ts";
import { pruneGraph } from "../../src/graphs/prune.ts";
import { randomGraph } from "./random-graph.ts";

export const DEMO_TOKENS = [
  "<s>",
  " Once",
  " upon",
  " a",
  " time",
  ",",
  " Lily",
  " said",
  " that",
  "\n",
  " she",
];

/** `nLayers` layers over the demo prompt (its first `nPos` tokens), pruned as `graph` does by default. */
export function demoFrontEndGraph(seed = 3, nLayers = 4, nPos = 8, nFeatures = 60): FrontEndGraph {
  const graph = randomGraph(seed, nLayers, nPos, nFeatures, 2);
  const pruned = pruneGraph(graph, { nodeThreshold: 0.8, edgeThreshold: 0.98 });
  return frontEndGraph(graph, pruned, {
    slug: `demo-${seed}`,
    scan: "random-transcoders",
    prompt: DEMO_TOKENS.slice(0, nPos).join(""),
    promptTokens: DEMO_TOKENS.slice(0, nPos),
    logitTokens: [" she", " he"],
    nodeThreshold: 0.8,
  });
}
