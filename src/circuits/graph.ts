/**
 * The computational graph of edges (ACDC / EAP naming): nodes `input`, `a{L}.h{H}`, `m{L}`, `logits`; an edge
 * from every node to every later node's input, a head having three inputs (q, k, v).
 *
 * Nodes are ordered [input, a0.h0 .. a0.h{H-1}, m0, a1.h0, ..., m{L-1}], so every child's parents are a
 * prefix of that list. Child inputs are ordered per layer as q of every head, k of every head, v of every
 * head, then the MLP; `logits` last. Edges are numbered child by child, parent within child:
 * edge = child.edgeOffset + parent. A layer's 3·H head inputs therefore own one contiguous
 * [3H, nParents] block of the edge array, which the edge-masked forward reads as a matrix.
 */

import { headName, mlpName } from "../model/component-names.ts";

export type HeadInput = "q" | "k" | "v";
export const HEAD_INPUTS: readonly HeadInput[] = ["q", "k", "v"];

export interface GraphShape {
  nLayers: number;
  nHeads: number;
  /**
   * Attention and MLP read the same residual (GPT-NeoX's parallel residual): a layer's MLP has no edges
   * from that layer's heads, so its parents are the nodes before them (still a prefix).
   */
  parallel?: boolean;
}

export interface ChildInput {
  /** `a{L}.h{H}<q>`, `m{L}` or `logits`. */
  name: string;
  /** The node reading this input. */
  node: string;
  kind: "head" | "mlp" | "logits";
  layer: number;
  head: number | null;
  input: HeadInput | null;
  /** Its parents are nodes [0, nParents). */
  nParents: number;
  edgeOffset: number;
}

export interface Edge {
  name: string;
  parent: string;
  child: string;
  input: HeadInput | null;
}

export class EdgeGraph {
  readonly nodes: string[];
  readonly children: ChildInput[];
  readonly nEdges: number;
  // Names are looked up by their two ends, not per edge: a map of every edge's name would hold millions of
  // strings on large models (GPT-2 XL: 2.2M edges), slowing every garbage collection.
  private readonly nodeIndexByName: Map<string, number>;
  private readonly childIndexByName: Map<string, number>;
  private readonly childIndexByEdge: Int32Array;

  constructor(readonly shape: GraphShape) {
    const { nLayers: L, nHeads: H } = shape;
    this.nodes = ["input"];
    for (let l = 0; l < L; l++) {
      for (let h = 0; h < H; h++) this.nodes.push(headNode(l, h));
      this.nodes.push(`m${l}`);
    }
    this.children = [];
    let offset = 0;
    const add = (c: Omit<ChildInput, "edgeOffset">) => {
      this.children.push({ ...c, edgeOffset: offset });
      offset += c.nParents;
    };
    for (let l = 0; l < L; l++) {
      const headParents = this.headNodeIndex(l, 0);
      for (const input of HEAD_INPUTS)
        for (let h = 0; h < H; h++) {
          const node = headNode(l, h);
          add({
            name: `${node}<${input}>`,
            node,
            kind: "head",
            layer: l,
            head: h,
            input,
            nParents: headParents,
          });
        }
      add({
        name: `m${l}`,
        node: `m${l}`,
        kind: "mlp",
        layer: l,
        head: null,
        input: null,
        nParents: this.mlpParents(l),
      });
    }
    add({
      name: "logits",
      node: "logits",
      kind: "logits",
      layer: L,
      head: null,
      input: null,
      nParents: this.nodes.length,
    });
    this.nEdges = offset;
    this.childIndexByEdge = new Int32Array(offset);
    this.children.forEach((c, ci) => {
      this.childIndexByEdge.fill(ci, c.edgeOffset, c.edgeOffset + c.nParents);
    });
    this.nodeIndexByName = new Map(this.nodes.map((n, i) => [n, i]));
    this.childIndexByName = new Map(this.children.map((c, i) => [c.name, i]));
  }

  headNodeIndex(layer: number, head: number): number {
    return 1 + layer * (this.shape.nHeads + 1) + head;
  }
  mlpNodeIndex(layer: number): number {
    return 1 + layer * (this.shape.nHeads + 1) + this.shape.nHeads;
  }
  /** How many nodes (a prefix) feed layer `layer`'s MLP: all before it, or before its heads when parallel. */
  mlpParents(layer: number): number {
    return this.shape.parallel ? this.headNodeIndex(layer, 0) : this.mlpNodeIndex(layer);
  }
  /** Index of a layer's first head input (q of head 0); its MLP input follows the 3H head inputs. */
  layerChildIndex(layer: number): number {
    return layer * (3 * this.shape.nHeads + 1);
  }
  get logitsChildIndex(): number {
    return this.children.length - 1;
  }

  edge(i: number): Edge {
    const c = this.children[this.childIndexByEdge[i]];
    const parent = this.nodes[i - c.edgeOffset];
    return { name: `${parent}->${c.name}`, parent, child: c.node, input: c.input };
  }
  childOfEdge(i: number): ChildInput {
    return this.children[this.childIndexByEdge[i]];
  }
  parentIndexOfEdge(i: number): number {
    return i - this.children[this.childIndexByEdge[i]].edgeOffset;
  }

  /** The edge's index; a clear error for a name that is not an edge of this model's graph. */
  edgeIndex(name: string): number {
    const arrow = name.indexOf("->");
    const parent = arrow < 0 ? undefined : this.nodeIndexByName.get(name.slice(0, arrow));
    const child =
      arrow < 0 ? undefined : this.children[this.childIndexByName.get(name.slice(arrow + 2)) ?? -1];
    if (parent === undefined || child === undefined || parent >= child.nParents) {
      throw new Error(
        `"${name}" is not an edge of this model's graph. Edges are named PARENT->CHILD, e.g. "input->a0.h1<q>", ` +
          `"a0.h1->m1", "m0->logits"; a parent must come before its child (a head reads only earlier layers).`,
      );
    }
    return child.edgeOffset + parent;
  }

  /** A mask (1 = kept) with exactly the named edges kept. */
  maskOf(edgeNames: Iterable<string>): Float32Array {
    const mask = new Float32Array(this.nEdges);
    for (const n of edgeNames) mask[this.edgeIndex(n)] = 1;
    return mask;
  }
}

export function headNode(layer: number, head: number): string {
  return `a${layer}.h${head}`;
}

/**
 * A node (or child input) as reports, pages and CLI text name it: `a4.h2` → `L4H2`, `a4.h2<q>` → `L4H2<q>`,
 * `m4` → `MLP4`; `input` and `logits` as they are. Edge names in JSON and `--keep` files stay the graph's.
 */
export function nodeLabel(node: string): string {
  const head = /^a(\d+)\.h(\d+)(<[qkv]>)?$/.exec(node);
  if (head) return headName(Number(head[1]), Number(head[2])) + (head[3] ?? "");
  const mlp = /^m(\d+)$/.exec(node);
  return mlp ? mlpName(Number(mlp[1])) : node;
}

/** An edge as reports name it: `a4.h2->m5` → `L4H2->MLP5`, `input->a0.h1<q>` → `input->L0H1<q>`. */
export function edgeLabel(edge: string): string {
  return edge.split("->").map(nodeLabel).join("->");
}

/**
 * The edges of `kept` that lie on a path from `input` to `logits` using only kept edges. A head counts
 * as reached when any of its q/k/v inputs has a kept edge from a reached node.
 */
export function pruneToPaths(graph: EdgeGraph, kept: readonly number[]): number[] {
  const nodeIndex = new Map(graph.nodes.map((n, i) => [n, i]));
  const nNodes = graph.nodes.length + 1; // + logits
  const childNode = (e: number) => {
    const c = graph.childOfEdge(e);
    return c.kind === "logits" ? nNodes - 1 : (nodeIndex.get(c.node) as number);
  };
  // Parents precede children in node order, so one pass each way settles reachability.
  const sorted = [...kept].sort((a, b) => childNode(a) - childNode(b) || a - b);
  const fromInput = new Uint8Array(nNodes);
  fromInput[0] = 1;
  for (const e of sorted) if (fromInput[graph.parentIndexOfEdge(e)]) fromInput[childNode(e)] = 1;
  const toLogits = new Uint8Array(nNodes);
  toLogits[nNodes - 1] = 1;
  for (let i = sorted.length - 1; i >= 0; i--) {
    const e = sorted[i];
    if (toLogits[childNode(e)]) toLogits[graph.parentIndexOfEdge(e)] = 1;
  }
  return kept.filter((e) => fromInput[graph.parentIndexOfEdge(e)] && toLogits[childNode(e)]);
}
