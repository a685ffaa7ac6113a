/**
 * A prompt's attribution graph from start to front end: attribute, prune, score, and the front-end object
 * `graph --out` writes and the explorer's graph task answers (one path, so both give the same graph).
 */
import type { HookedTransformer } from "../model/hooked-transformer.ts";
import { type AttributedGraph, type AttributeOptions, attributeGraph } from "./attribute-graph.ts";
import { type FrontEndGraph, frontEndGraph } from "./graph-files.ts";
import { type GraphScores, graphScores, type PruneResult, pruneGraph } from "./prune.ts";
import type { TranscoderSet } from "./transcoder-set.ts";

export interface PromptGraphOptions extends AttributeOptions {
  /** The prompt's text, as the front end shows it. */
  prompt: string;
  /** The graph's name in the front end. */
  slug: string;
  /** Names the transcoder set (metadata.scan). */
  scan: string;
  nodeThreshold: number;
  edgeThreshold: number;
}

export interface PromptGraph {
  attributed: AttributedGraph;
  pruned: PruneResult;
  scores: GraphScores;
  frontEnd: FrontEndGraph;
}

/** The graph of `tokens` (the prompt's tokens as the model reads them) with its pruning and scores. */
export async function promptGraph(
  model: HookedTransformer,
  tokens: readonly number[],
  set: TranscoderSet,
  opts: PromptGraphOptions,
): Promise<PromptGraph> {
  const attributed = await attributeGraph(model, tokens, set, opts);
  const { graph } = attributed;
  const pruned = pruneGraph(graph, { nodeThreshold: opts.nodeThreshold, edgeThreshold: opts.edgeThreshold });
  const frontEnd = frontEndGraph(graph, pruned, {
    slug: opts.slug,
    scan: opts.scan,
    transcoderList: set.ids,
    prompt: opts.prompt,
    promptTokens: graph.inputTokens.map((t) => model.toString([t])),
    logitTokens: graph.logitTokens.map((t) => model.toString([t])),
    nodeThreshold: opts.nodeThreshold,
  });
  return { attributed, pruned, scores: graphScores(graph), frontEnd };
}
