/**
 * Find a circuit: score every edge (exact, EAP or EAP-IG), choose the circuit (top n, or the smallest
 * reaching a faithfulness), draw the faithfulness curve, and check the estimate against the exact score
 * on its top edges.
 */

import { hasGap } from "../analysis/answer-metrics.ts";
import { linearAgreement } from "../analysis/correlation.ts";
import type { CircuitTask } from "./circuit-task.ts";
import { DEFAULT_COMPARE_TOP } from "./defaults.ts";
import type { HeadInput } from "./graph.ts";
import { type CurvePoint, rankEdges, smallestFaithful, topNCircuit } from "./select.ts";

export const SCORE_METHODS = ["eap", "eap-ig", "exact"] as const;
export type ScoreMethod = (typeof SCORE_METHODS)[number];

export interface FindCircuitOptions {
  method: ScoreMethod;
  /** EAP-IG's number of points between the corrupted and the clean input (default 5). */
  igSteps?: number;
  /** Exactly one of: keep the top n edges, or the smallest circuit reaching this faithfulness. */
  topN?: number;
  faithfulness?: number;
  /** How many of the estimate's top edges get an exact score for comparison (default 20; 0 = none). */
  compareTop?: number;
  onProgress?: (phase: string, done: number, total: number) => void;
  signal?: AbortSignal;
}

export interface ScoredEdge {
  name: string;
  parent: string;
  child: string;
  input: HeadInput | null;
  score: number;
  /** The exact score, where computed (the comparison's edges, or every edge with --method exact). */
  exact?: number;
}

export interface EstimateCheck {
  /** The estimate's top edges by |estimate| with their exact scores. */
  edges: { name: string; estimate: number; exact: number }[];
  /** Pearson r between estimate and exact on these edges. */
  correlation: number;
  /** Edges whose estimate has the sign of the exact score. */
  sameSign: number;
  /** Edges among these whose exact score ranks outside the estimate's top half of them. */
  overrated: string[];
}

export interface CircuitResult {
  method: ScoreMethod;
  igSteps: number | null;
  nodes: string[];
  /** Every edge, by decreasing |score|. */
  edges: ScoredEdge[];
  baseline: { clean: number; corrupted: number };
  circuit: {
    edges: string[];
    metric: number;
    normalized: number;
    topN: number;
    /** The requested faithfulness, and whether a circuit reached it. */
    target: number | null;
    reached: boolean;
  };
  faithfulness: CurvePoint[];
  comparison: EstimateCheck | null;
}

export async function findCircuit(task: CircuitTask, opts: FindCircuitOptions): Promise<CircuitResult> {
  const { graph } = task;
  if ((opts.topN === undefined) === (opts.faithfulness === undefined))
    throw new Error("Give exactly one of topN (edges to keep) or faithfulness (target, e.g. 0.8)");
  task.checkBaselineGap();
  const igSteps = opts.method === "eap-ig" ? (opts.igSteps ?? 5) : null;
  const progress = (phase: string) => (done: number, total: number) => opts.onProgress?.(phase, done, total);
  const all = Array.from({ length: graph.nEdges }, (_, i) => i);
  let scores: ArrayLike<number>;
  const exact = new Map<number, number>();
  if (opts.method === "exact") {
    scores = await task.exactScores(all, progress("exact scores"), opts.signal);
    for (const e of all) exact.set(e, scores[e]);
  } else {
    scores = await task.gradientScores(igSteps ?? 1, progress(`${opts.method} scores`), opts.signal);
  }
  const ranked = rankEdges(scores);

  let comparison: EstimateCheck | null = null;
  const k = Math.min(opts.compareTop ?? DEFAULT_COMPARE_TOP, graph.nEdges);
  if (opts.method !== "exact" && k > 0) {
    const top = ranked.slice(0, k);
    const ex = await task.exactScores(top, progress("exact check"), opts.signal);
    for (const [i, e] of top.entries()) exact.set(e, ex[i]);
    comparison = compareWithExact(
      top.map((e, i) => ({ name: graph.edge(e).name, estimate: scores[e], exact: ex[i] })),
    );
  }

  const search =
    opts.topN !== undefined
      ? await topNCircuit(task, ranked, opts.topN, progress("faithfulness"), opts.signal)
      : await smallestFaithful(
          task,
          ranked,
          opts.faithfulness as number,
          progress("faithfulness"),
          opts.signal,
        );
  return {
    method: opts.method,
    igSteps,
    nodes: [...graph.nodes, "logits"],
    // One object literal per edge: built by spreading, GPT-2 XL's 2.2M edges took 0.9 GB of heap, not 0.35.
    edges: ranked.map((e) => {
      const { name, parent, child, input } = graph.edge(e);
      const scored: ScoredEdge = { name, parent, child, input, score: scores[e] };
      const x = exact.get(e);
      if (x !== undefined) scored.exact = x;
      return scored;
    }),
    baseline: task.baseline,
    circuit: {
      edges: [...search.kept].sort((a, b) => a - b).map((e) => graph.edge(e).name),
      metric: search.point.metric,
      normalized: search.point.normalized,
      topN: search.point.topN,
      target: opts.faithfulness ?? null,
      reached: search.reached,
    },
    faithfulness: search.curve,
    comparison,
  };
}

function compareWithExact(edges: EstimateCheck["edges"]): EstimateCheck {
  const byExact = [...edges].sort((a, b) => Math.abs(b.exact) - Math.abs(a.exact));
  const exactTop = new Set(byExact.slice(0, Math.ceil(edges.length / 2)).map((e) => e.name));
  return {
    edges,
    correlation: linearAgreement(
      edges.map((e) => e.estimate),
      edges.map((e) => e.exact),
    ).correlation,
    sameSign: edges.filter((e) => Math.sign(e.estimate) === Math.sign(e.exact)).length,
    overrated: edges
      .slice(0, Math.ceil(edges.length / 2))
      .filter((e) => !exactTop.has(e.name))
      .map((e) => e.name),
  };
}

/**
 * The metric of a circuit given by edge names (all other edges carry the corrupted values); `normalized`
 * is null when the clean and corrupted runs do not differ (it is undefined then).
 */
export function evaluateEdges(
  task: CircuitTask,
  names: readonly string[],
): { metric: number; normalized: number | null; clean: number; corrupted: number } {
  const metric = task.evaluate(task.graph.maskOf(names));
  const { clean, corrupted } = task.baseline;
  const normalized = hasGap(clean, corrupted) ? task.normalize(metric) : null;
  return { metric, normalized, clean, corrupted };
}
