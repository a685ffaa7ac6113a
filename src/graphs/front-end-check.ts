/**
 * Reading a front-end graph JSON (circuit-tracer / Neuronpedia schema, `frontEndGraph`) that came from
 * outside: a file given to `serve --graph` or a page. Checks what the graph view relies on, so a wrong file
 * is refused naming the field and the fix, never drawn half-way.
 */
import { readFileSync } from "node:fs";
import type { FrontEndGraph } from "./graph-files.ts";

const FIX =
  "pass a graph written by `circuitscope graph --out graph.json` or circuit-tracer's create_graph_files";

function fail(source: string, problem: string): never {
  throw new Error(`${source}: ${problem}: ${FIX}.`);
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/** The layer row a node's `layer` string names: a whole number, or "E" for embeddings. */
function checkLayer(source: string, id: string, layer: unknown, type: unknown): void {
  if (typeof layer !== "string" && typeof layer !== "number") fail(source, `node "${id}" has no layer`);
  if (type === "embedding") return;
  if (!/^\d+$/.test(String(layer))) fail(source, `node "${id}" has layer "${layer}", not a whole number`);
}

/**
 * The graph, checked: metadata with the prompt tokens; nodes with string ids, a layer and a position inside
 * the prompt; links between known nodes with finite weights; qParams' pins and supernodes naming known nodes.
 * Missing qParams are filled with the empty defaults `frontEndGraph` writes; `pinnedIds` given as one
 * comma-separated string (as circuit-tracer's viewer also accepts) becomes a list. An id given to two nodes
 * (circuit-tracer's ids collide when a layer-0 feature's index equals a layer number at the same position) keeps
 * the later node, as their viewer does, and says so in `notes`.
 */
export function checkFrontEndGraph(
  value: unknown,
  source = "graph JSON",
  notes: string[] = [],
): FrontEndGraph {
  if (!isRecord(value)) fail(source, "not a JSON object");
  const { metadata, nodes, links } = value;
  if (!isRecord(metadata)) fail(source, "no metadata object");
  const tokens = metadata.prompt_tokens;
  if (!Array.isArray(tokens) || tokens.some((t) => typeof t !== "string"))
    fail(source, "metadata.prompt_tokens is not a list of strings");
  if (!Array.isArray(nodes) || nodes.length === 0) fail(source, "no nodes");
  if (!Array.isArray(links)) fail(source, "no links list");
  const ids = new Set<string>();
  const lastOf = new Map<string, number>();
  for (const [i, node] of nodes.entries()) {
    if (!isRecord(node) || typeof node.node_id !== "string") fail(source, `nodes[${i}] has no node_id`);
    const id = node.node_id;
    if (ids.has(id))
      notes.push(
        `node id "${id}" is given to two nodes (circuit-tracer's ids collide when a layer-0 feature's index equals a layer number at the same position); the later one is drawn, as in circuit-tracer's viewer`,
      );
    ids.add(id);
    lastOf.set(id, i);
    if (typeof node.feature_type !== "string") fail(source, `node "${id}" has no feature_type`);
    checkLayer(source, id, node.layer, node.feature_type);
    const ctx = node.ctx_idx;
    if (typeof ctx !== "number" || !Number.isInteger(ctx) || ctx < 0 || ctx >= tokens.length)
      fail(source, `node "${id}" has ctx_idx ${ctx}, outside the ${tokens.length} prompt tokens`);
  }
  for (const [i, link] of links.entries()) {
    if (!isRecord(link)) fail(source, `links[${i}] is not an object`);
    for (const end of ["source", "target"] as const)
      if (typeof link[end] !== "string" || !ids.has(link[end] as string))
        fail(source, `links[${i}].${end} "${link[end]}" is not a node of the graph`);
    if (typeof link.weight !== "number" || !Number.isFinite(link.weight))
      fail(source, `links[${i}] has weight ${link.weight}, not a finite number`);
  }
  const q = isRecord(value.qParams) ? value.qParams : {};
  const pins = q.pinnedIds ?? [];
  const pinnedIds = typeof pins === "string" ? pins.split(",").filter((p) => p !== "") : pins;
  if (!Array.isArray(pinnedIds) || pinnedIds.some((p) => typeof p !== "string" || !ids.has(p)))
    fail(source, "qParams.pinnedIds names a node the graph does not have");
  const supernodes = q.supernodes ?? [];
  if (
    !Array.isArray(supernodes) ||
    supernodes.some(
      (s) =>
        !Array.isArray(s) ||
        s.length < 2 ||
        typeof s[0] !== "string" ||
        s.slice(1).some((m) => typeof m !== "string" || !ids.has(m)),
    )
  )
    fail(source, "qParams.supernodes is not a list of [name, ...node ids of the graph]");
  return {
    ...(value as unknown as FrontEndGraph),
    nodes: (nodes as FrontEndGraph["nodes"]).filter((n, i) => lastOf.get(n.node_id) === i),
    qParams: {
      linkType: "both",
      clickedId: "",
      sg_pos: "",
      ...(q as Partial<FrontEndGraph["qParams"]>),
      pinnedIds: pinnedIds as string[],
      supernodes: supernodes as string[][],
    },
  };
}

/** Reads and checks a front-end graph file; a missing or unparsable file is refused with the fix. */
export function readFrontEndGraph(path: string): FrontEndGraph {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new Error(
      `graph file ${path} cannot be read (${code === "ENOENT" ? "no such file" : code}): ${FIX}.`,
    );
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    fail(path, `not JSON (${(err as Error).message})`);
  }
  return checkFrontEndGraph(value, path);
}
