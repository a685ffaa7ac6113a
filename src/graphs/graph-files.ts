/**
 * The files a graph is written as: `--raw DIR` (every node and the unpruned adjacency, for scripts) and the
 * circuit-tracer / Neuronpedia front-end JSON (pruned), field for field as circuit-tracer's
 * `create_graph_files` writes it, so it opens in their viewer.
 */
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { writeFileAtomic } from "../util/atomic-write.ts";
import { writeReportDir } from "../util/report-dir.ts";
import { writeSafetensors } from "../weights/safetensors.ts";
import { type AttributionGraph, checkGraph, graphNodes, nodeKind } from "./attribution-graph.ts";
import type { PruneResult } from "./prune.ts";

/** Writes `nodes.json` and `adjacency.safetensors` (tensor `adjacency`, F32 [n, n]) into a new report directory. */
export async function writeRawGraph(
  dir: string,
  graph: AttributionGraph,
  opts: { overwrite?: boolean; flag?: string } = {},
): Promise<void> {
  const nodes = graphNodes(graph);
  const n = nodes.length;
  await writeReportDir(
    dir,
    { overwrite: opts.overwrite, flag: opts.flag ?? "--raw", command: "graph" },
    (tmp) => {
      writeFileSync(join(tmp, "nodes.json"), `${JSON.stringify(nodes)}\n`);
      writeSafetensors(
        join(tmp, "adjacency.safetensors"),
        { adjacency: { shape: [n, n], data: graph.adjacency } },
        "F32",
      );
    },
  );
}

/** The front end's version of this file layout. */
export const FRONT_END_SCHEMA_VERSION = 1;

export interface FrontEndNode {
  node_id: string;
  feature: number;
  layer: string;
  ctx_idx: number;
  feature_type: string;
  token_prob: number;
  is_target_logit: boolean;
  run_idx: number;
  reverse_ctx_idx: number;
  jsNodeId: string;
  clerp: string;
  influence: number | null;
  activation: number | null;
}

export interface FrontEndLink {
  source: string;
  target: string;
  weight: number;
}

export interface FrontEndGraph {
  metadata: {
    slug: string;
    scan: string;
    transcoder_list: string[];
    prompt_tokens: string[];
    prompt: string;
    node_threshold: number;
    schema_version: number;
  };
  qParams: {
    pinnedIds: string[];
    supernodes: string[][];
    linkType: string;
    clickedId: string;
    sg_pos: string;
  };
  nodes: FrontEndNode[];
  links: FrontEndLink[];
}

export interface FrontEndOptions {
  /** The graph's name in the viewer. */
  slug: string;
  /** Names the transcoder set the features belong to. */
  scan: string;
  transcoderList?: string[];
  prompt: string;
  /** The text of each prompt token (as the tokenizer decodes it alone). */
  promptTokens: readonly string[];
  /** The text of each logit token. */
  logitTokens: readonly string[];
  nodeThreshold: number;
}

/**
 * Newlines, tabs and carriage returns as circuit-tracer's `process_token` marks them (⏎ → ↵). Not the
 * project's `formatToken`: the viewer expects its own marks and spaces kept as spaces.
 */
export function frontEndToken(token: string): string {
  return token.replaceAll("\n", "⏎").replaceAll("\t", "→").replaceAll("\r", "↵");
}

/**
 * The pruned graph in the front-end schema: the nodes the node mask keeps (in matrix order), the links the
 * edge mask keeps between them (target-major) with the adjacency entry as weight, then only the nodes a link
 * touches, plus every token and logit.
 */
export function frontEndGraph(
  graph: AttributionGraph,
  pruned: PruneResult,
  opts: FrontEndOptions,
): FrontEndGraph {
  const ranges = checkGraph(graph);
  const n = ranges.nNodes;
  if (
    opts.promptTokens.length !== graph.inputTokens.length ||
    opts.logitTokens.length !== graph.logitTokens.length
  ) {
    throw new Error("frontEndGraph: one token text is needed per prompt token and per logit token");
  }
  const raw = graphNodes(graph);
  const kept = new Map<number, FrontEndNode>();
  for (let i = 0; i < n; i++) {
    if (!pruned.nodeMask[i]) continue;
    const node = raw[i];
    const kind = nodeKind(ranges, i);
    const base = {
      node_id: node.node_id,
      feature: node.feature,
      layer: node.layer,
      ctx_idx: node.ctx_idx,
      feature_type: node.feature_type,
      token_prob: 0,
      is_target_logit: false,
      run_idx: 0,
      reverse_ctx_idx: 0,
      clerp: "",
      influence: pruned.cumulativeScores[i] as number | null,
      activation: node.activation,
    };
    if (kind === "feature") kept.set(i, { ...base, jsNodeId: `${node.layer}_${node.feature}-0` });
    else if (kind === "error") kept.set(i, { ...base, jsNodeId: `${node.layer}_${node.ctx_idx}-0` });
    else if (kind === "token") {
      kept.set(i, { ...base, jsNodeId: `E_${graph.inputTokens[node.ctx_idx]}-${node.ctx_idx}` });
    } else {
      const k = i - ranges.logitStart;
      const p = graph.logitProbabilities[k];
      kept.set(i, {
        ...base,
        token_prob: p,
        is_target_logit: k === 0,
        jsNodeId: `L_${node.feature}-${node.ctx_idx}`,
        clerp: `Output "${frontEndToken(opts.logitTokens[k])}" (p=${p.toFixed(3)})`,
        influence: null,
      });
    }
  }
  const links: FrontEndLink[] = [];
  const linked = new Set<number>();
  for (let t = 0; t < n; t++) {
    const target = kept.get(t);
    if (!target) continue;
    for (let s = 0; s < n; s++) {
      const source = kept.get(s);
      if (!pruned.edgeMask[t * n + s] || !source) continue;
      links.push({ source: source.node_id, target: target.node_id, weight: graph.adjacency[t * n + s] });
      linked.add(s);
      linked.add(t);
    }
  }
  const nodes = [...kept].filter(([i]) => linked.has(i) || i >= ranges.tokenStart).map(([, node]) => node);
  return {
    metadata: {
      slug: opts.slug,
      scan: opts.scan,
      transcoder_list: opts.transcoderList ?? [],
      prompt_tokens: opts.promptTokens.map(frontEndToken),
      prompt: opts.prompt,
      node_threshold: opts.nodeThreshold,
      schema_version: FRONT_END_SCHEMA_VERSION,
    },
    qParams: { pinnedIds: [], supernodes: [], linkType: "both", clickedId: "", sg_pos: "" },
    nodes,
    links,
  };
}

/** Writes the front-end graph as indented JSON, atomically. */
export function writeFrontEndGraph(path: string, graph: FrontEndGraph): void {
  writeFileAtomic(path, `${JSON.stringify(graph, null, 2)}\n`);
}
