/** A pruned front-end graph (circuit-tracer JSON) built by the project's own builders from a random graph. */
import { type FrontEndGraph, frontEndGraph } from "../../src/graphs/graph-files.ts";
import { pruneGraph } from "../../src/graphs/prune.ts";
import type { TranscoderSet } from "../../src/graphs/transcoder-set.ts";
import type { ModelConfig } from "../../src/weights/config.ts";
import { randomGraph } from "./random-graph.ts";
import { randomTranscoderSet } from "./random-transcoder.ts";

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

/** Random transcoders for a model of `cfg` holding every feature of a demo graph (numbered from 100: 200 wide). */
export function demoGraphTranscoders(cfg: Pick<ModelConfig, "nLayers" | "dModel">): TranscoderSet {
  return randomTranscoderSet({
    layers: cfg.nLayers,
    dModel: cfg.dModel,
    dTc: 200,
    seed: 5,
    jump: () => false,
    skip: () => false,
  });
}
