/**
 * Figures and words of a circuit result, in one place for the CLI (`circuit --html/--svg`) and the
 * explorer: the graph's data, the faithfulness curve, what the score means, and the summary sentences.
 */
import type { CircuitResult } from "../../circuits/find-circuit.ts";
import { lineChart } from "../charts/line-chart.ts";
import type { CircuitGraphData } from "../circuit-graph.ts";
import type { ChartFigure } from "../figure.ts";

/** What the edge score is, for legends and the page's inputs. */
export function circuitScoreLabel(r: Pick<CircuitResult, "method" | "igSteps">): string {
  const what = "change in the metric when the edge is removed";
  if (r.method === "exact") return `exact (${what})`;
  if (r.method === "eap") return `EAP (first-order estimate of the ${what})`;
  return `EAP-IG with ${r.igSteps} steps (estimate of the ${what})`;
}

/** The circuit's edges (with their scores) for the layered graph. */
export function circuitGraphData(r: CircuitResult, nLayers: number, model: string): CircuitGraphData {
  const kept = new Set(r.circuit.edges);
  return {
    title: `Circuit of ${model}: ${r.circuit.edges.length} edges, faithfulness ${r.circuit.normalized.toFixed(3)}`,
    nLayers,
    scoreLabel: circuitScoreLabel(r),
    edges: r.edges.filter((e) => kept.has(e.name)),
  };
}

/** The curve as drawn: one point per circuit size (sizes that prune alike are one), sizes above 0 (log axis). */
export function curvePoints<P extends { edges: number }>(faithfulness: readonly P[]): P[] {
  return faithfulness.filter((p, i, all) => p.edges > 0 && all.findIndex((q) => q.edges === p.edges) === i);
}

/**
 * Where the curve is not monotone next to the chosen circuit: points among the `window` sizes either side
 * of it whose faithfulness is below the point before (a larger circuit that is less faithful).
 */
export function dipsNear(
  curve: readonly { edges: number; normalized: number }[],
  chosen: number,
  window = 3,
): { edges: number; normalized: number; drop: number }[] {
  const at = curve.findIndex((p) => p.edges >= chosen);
  if (at < 0) return [];
  const out: { edges: number; normalized: number; drop: number }[] = [];
  for (let i = Math.max(1, at - window); i <= Math.min(curve.length - 1, at + window); i++) {
    const drop = curve[i - 1].normalized - curve[i].normalized;
    if (drop > 0) out.push({ edges: curve[i].edges, normalized: curve[i].normalized, drop });
  }
  return out;
}

/**
 * Faithfulness against circuit size on a log axis (the choice is made among the first few dozen edges of
 * thousands); sizes that prune to the same number of edges are one point. With `chosen` (the circuit's
 * edge count) a rule marks it, and rings mark where the curve is not monotone around it.
 */
export function faithfulnessCurve(r: Pick<CircuitResult, "faithfulness">, chosen?: number): ChartFigure {
  const curve = curvePoints(r.faithfulness);
  const dips = chosen === undefined ? [] : dipsNear(curve, chosen);
  return lineChart({
    title: "Faithfulness against circuit size",
    x: curve.map((p) => p.edges),
    series: [{ name: "circuit", values: curve.map((p) => p.normalized) }],
    xTitle: "edges kept (log scale; top n by |score|, pruned to input→logits paths)",
    yTitle: "faithfulness (1 = clean, 0 = corrupted)",
    xScale: "log",
    rules: chosen === undefined ? [] : [{ x: chosen, label: `chosen: ${chosen} edges` }],
    marks: dips.map((d) => ({ x: d.edges, y: d.normalized, label: `not monotone (−${d.drop.toFixed(3)})` })),
  });
}

/** Sentences stating the baselines, the circuit found and how well the estimate matched the exact score. */
export function circuitSummary(r: CircuitResult): string[] {
  const c = r.circuit;
  const lines = [
    `Baseline logit difference: clean ${r.baseline.clean.toFixed(4)}, corrupted ${r.baseline.corrupted.toFixed(4)}.`,
    c.target !== null
      ? `${c.reached ? "Smallest circuit found reaching" : "No top-n circuit reached"} faithfulness ${c.target}: ${c.edges.length} of ${r.edges.length} edges (top ${c.topN} by |score|, pruned), faithfulness ${c.normalized.toFixed(3)}. Found by a search over top-n sizes; a smaller circuit may exist.`
      : `Top ${c.topN} edges by |score|, pruned to ${c.edges.length} of ${r.edges.length} on input→logits paths: faithfulness ${c.normalized.toFixed(3)}.`,
  ];
  if (r.comparison)
    lines.push(
      `Estimate vs exact on the estimate's top ${r.comparison.edges.length} edges: Pearson r ${r.comparison.correlation.toFixed(3)}, same sign on ${r.comparison.sameSign} of ${r.comparison.edges.length}.`,
    );
  return lines;
}
