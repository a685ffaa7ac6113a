/**
 * A circuit in brief, for reports and the explorer: its size, faithfulness, components and strongest
 * edges, and how it compares with a list of components a manual analysis ranked top.
 */
import type { CircuitResult } from "./find-circuit.ts";

export interface CircuitBrief {
  method: string;
  edges: number;
  totalEdges: number;
  normalized: number;
  target: number | null;
  reached: boolean;
  /** Heads and MLPs the circuit's edges touch, in graph order. */
  components: string[];
  /** The circuit's edges by decreasing |score|, at most `topEdges` of them. */
  strongest: { name: string; score: number; exact?: number }[];
  estimateCheck: { edges: number; correlation: number; sameSign: number } | null;
}

const nodeOfEnd = (end: string) => end.replace(/<[qkv]>$/, "");

function nodeOrder(n: string): number {
  const m = /^(a|m)(\d+)(?:\.h(\d+))?$/.exec(n);
  if (!m) return n === "input" ? -1 : Number.POSITIVE_INFINITY;
  return Number(m[2]) * 10000 + (m[1] === "m" ? 9999 : Number(m[3]));
}

export function circuitBrief(r: CircuitResult, topEdges = 10): CircuitBrief {
  const kept = new Set(r.circuit.edges);
  const components = new Set<string>();
  for (const e of r.circuit.edges)
    for (const end of e.split("->")) {
      const n = nodeOfEnd(end);
      if (n !== "input" && n !== "logits") components.add(n);
    }
  return {
    method: r.method === "eap-ig" ? `EAP-IG (${r.igSteps} steps)` : r.method.toUpperCase(),
    edges: r.circuit.edges.length,
    totalEdges: r.edges.length,
    normalized: r.circuit.normalized,
    target: r.circuit.target,
    reached: r.circuit.reached,
    components: [...components].sort((a, b) => nodeOrder(a) - nodeOrder(b)),
    strongest: r.edges
      .filter((e) => kept.has(e.name))
      .slice(0, topEdges)
      .map((e) => ({ name: e.name, score: e.score, ...(e.exact === undefined ? {} : { exact: e.exact }) })),
    estimateCheck: r.comparison
      ? {
          edges: r.comparison.edges.length,
          correlation: r.comparison.correlation,
          sameSign: r.comparison.sameSign,
        }
      : null,
  };
}

/**
 * Which of the components a manual analysis ranked top (`a{L}.h{H}` or `m{L}` names) are in the circuit,
 * and which circuit components it did not rank.
 */
export function compareWithManual(
  brief: CircuitBrief,
  manualTop: readonly string[],
): { inCircuit: string[]; missing: string[]; onlyInCircuit: string[] } {
  const inC = new Set(brief.components);
  const manual = new Set(manualTop);
  return {
    inCircuit: manualTop.filter((c) => inC.has(c)),
    missing: manualTop.filter((c) => !inC.has(c)),
    onlyInCircuit: brief.components.filter((c) => !manual.has(c)),
  };
}
