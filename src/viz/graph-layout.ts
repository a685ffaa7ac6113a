/**
 * Where an attribution graph's nodes go (pure data, shared by the standalone page and the explorer): prompt
 * positions across, layers up — token embeddings on the bottom row, each layer's features and error nodes
 * above, logits on top, as circuit-tracer's viewer lays them out. A position's column is as wide as its most
 * crowded layer, so columns never overlap and x grows with ctx_idx; y shrinks (goes up) with the layer.
 * Also the questions the view asks of the links: a node's strongest edges and the edges between groups.
 */
import type { FrontEndGraph, FrontEndLink, FrontEndNode } from "../graphs/graph-files.ts";

export type GraphNodeKind = "feature" | "error" | "embedding" | "logit";

export interface PlacedNode {
  id: string;
  kind: GraphNodeKind;
  /** 0 = embeddings, 1 + layer for features and errors, the top row for logits. */
  row: number;
  ctx: number;
  x: number;
  y: number;
  node: FrontEndNode;
}

export interface GraphLayout {
  width: number;
  height: number;
  nodes: PlacedNode[];
  /** One per row, bottom (embeddings) first. */
  rows: { label: string; y: number }[];
  /** One per prompt token, left to right: the column's left edge, width and the token text. */
  columns: { ctx: number; token: string; x: number; width: number }[];
  /** The plot area: below it the token labels, above it the logit labels. */
  plot: { left: number; right: number; top: number; bottom: number };
}

export const NODE_STEP = 16;
const MIN_COLUMN = 56;
const ROW_HEIGHT = 54;
const LEFT = 64;
const TOP = 150;
/** Room for the legend: the plot is never narrower than this. */
const MIN_WIDTH = 740;
const BOTTOM = 96;

export function frontEndNodeKind(node: FrontEndNode): GraphNodeKind {
  if (node.feature_type === "embedding") return "embedding";
  if (node.feature_type === "logit") return "logit";
  if (node.feature_type.includes("error")) return "error";
  return "feature";
}

const KIND_ORDER: Record<GraphNodeKind, number> = { embedding: 0, feature: 1, error: 2, logit: 3 };

export function layoutGraph(graph: FrontEndGraph): GraphLayout {
  const kinds = graph.nodes.map(frontEndNodeKind);
  // The logits' layer is n_layers + 1 (the front end's convention); without logits, above the highest layer.
  const logitLayers = graph.nodes.filter((_, i) => kinds[i] === "logit").map((n) => Number(n.layer));
  const blockLayers = graph.nodes
    .filter((_, i) => kinds[i] === "feature" || kinds[i] === "error")
    .map((n) => Number(n.layer));
  const top = logitLayers.length
    ? Math.max(...logitLayers)
    : Math.max(0, ...blockLayers.map((l) => l + 1)) + 1;
  const rowOf = (n: FrontEndNode, k: GraphNodeKind) =>
    k === "embedding" ? 0 : k === "logit" ? top : Number(n.layer) + 1;
  const tokens = graph.metadata.prompt_tokens;
  const cells = new Map<string, number[]>();
  for (const [i, n] of graph.nodes.entries()) {
    const key = `${n.ctx_idx}:${rowOf(n, kinds[i])}`;
    cells.set(key, [...(cells.get(key) ?? []), i]);
  }
  const widest = tokens.map(() => 0);
  for (const [key, members] of cells) {
    const ctx = Number(key.split(":")[0]);
    widest[ctx] = Math.max(widest[ctx], members.length);
  }
  const columns: GraphLayout["columns"] = [];
  let x = LEFT;
  for (const [ctx, token] of tokens.entries()) {
    const width = Math.max(MIN_COLUMN, widest[ctx] * NODE_STEP + 12);
    columns.push({ ctx, token, x, width });
    x += width;
  }
  const plot = { left: LEFT, right: x, top: TOP, bottom: TOP + top * ROW_HEIGHT };
  const yOf = (row: number) => plot.bottom - row * ROW_HEIGHT;
  const placed: PlacedNode[] = new Array(graph.nodes.length);
  for (const [key, members] of cells) {
    const [ctx, row] = key.split(":").map(Number);
    const sorted = [...members].sort(
      (a, b) =>
        KIND_ORDER[kinds[a]] - KIND_ORDER[kinds[b]] ||
        graph.nodes[a].feature - graph.nodes[b].feature ||
        a - b,
    );
    const col = columns[ctx];
    const start = col.x + (col.width - sorted.length * NODE_STEP) / 2;
    for (const [j, i] of sorted.entries()) {
      const node = graph.nodes[i];
      placed[i] = {
        id: node.node_id,
        kind: kinds[i],
        row,
        ctx,
        x: start + (j + 0.5) * NODE_STEP,
        y: yOf(row),
        node,
      };
    }
  }
  const rows = Array.from({ length: top + 1 }, (_, r) => ({
    label: r === 0 ? "Emb" : r === top ? "Logits" : `L${r - 1}`,
    y: yOf(r),
  }));
  return {
    width: Math.max(MIN_WIDTH, x + 24),
    height: plot.bottom + BOTTOM,
    nodes: placed,
    rows,
    columns,
    plot,
  };
}

export interface WeightedEdge {
  /** The node at the other end. */
  id: string;
  weight: number;
}

/** Strongest first by |weight|; ties by the other end's id, so the order never depends on the file's. */
function strongest(edges: WeightedEdge[], k: number): WeightedEdge[] {
  return edges
    .sort((a, b) => Math.abs(b.weight) - Math.abs(a.weight) || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0))
    .slice(0, k);
}

/** A node's k strongest incoming edges (from sources) and outgoing ones (to targets), with the totals. */
export function topEdges(
  links: readonly FrontEndLink[],
  id: string,
  k: number,
): { incoming: WeightedEdge[]; outgoing: WeightedEdge[]; nIncoming: number; nOutgoing: number } {
  const incoming = links.filter((l) => l.target === id).map((l) => ({ id: l.source, weight: l.weight }));
  const outgoing = links.filter((l) => l.source === id).map((l) => ({ id: l.target, weight: l.weight }));
  return {
    incoming: strongest(incoming, k),
    outgoing: strongest(outgoing, k),
    nIncoming: incoming.length,
    nOutgoing: outgoing.length,
  };
}

export interface SubgraphGroup {
  /** A supernode's name, or the node id of a pinned node outside every supernode. */
  name: string;
  members: string[];
}

/**
 * The pinned subgraph with supernodes merged (circuit-tracer's `[name, ...node_ids]`): one group per
 * supernode, one per pinned node in none. A node in two supernodes counts in the first.
 */
export function subgraphGroups(
  pinnedIds: readonly string[],
  supernodes: readonly string[][],
): SubgraphGroup[] {
  const taken = new Set<string>();
  const groups: SubgraphGroup[] = [];
  for (const [name, ...ids] of supernodes) {
    const members = ids.filter((m) => !taken.has(m));
    for (const m of members) taken.add(m);
    if (members.length) groups.push({ name, members });
  }
  for (const id of pinnedIds) if (!taken.has(id)) groups.push({ name: id, members: [id] });
  return groups;
}

/** The summed weight of the links from each group into each other group (edges inside a group are left out). */
export function groupEdges(
  links: readonly FrontEndLink[],
  groups: readonly SubgraphGroup[],
): { source: string; target: string; weight: number; count: number }[] {
  const groupOf = new Map<string, string>();
  for (const g of groups) for (const m of g.members) groupOf.set(m, g.name);
  const sums = new Map<string, { source: string; target: string; weight: number; count: number }>();
  for (const l of links) {
    const s = groupOf.get(l.source);
    const t = groupOf.get(l.target);
    if (s === undefined || t === undefined || s === t) continue;
    const key = JSON.stringify([s, t]);
    const e = sums.get(key) ?? { source: s, target: t, weight: 0, count: 0 };
    e.weight += l.weight;
    e.count += 1;
    sums.set(key, e);
  }
  return [...sums.values()].sort((a, b) => Math.abs(b.weight) - Math.abs(a.weight));
}
