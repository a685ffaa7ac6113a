/**
 * Choosing a circuit from edge scores: the top n edges by |score|, pruned to edges on a path from `input`
 * to `logits`; the faithfulness curve over n; the smallest such circuit reaching a target faithfulness.
 */

import { patchAborted } from "../patching/types.ts";
import { checkpointYield } from "../util/checkpoint-yield.ts";
import type { CircuitTask, Progress } from "./circuit-task.ts";
import { type EdgeGraph, pruneToPaths } from "./graph.ts";

export interface CurvePoint {
  /** Edges taken by |score| before pruning. */
  topN: number;
  /** Edges kept after pruning: the circuit's size. */
  edges: number;
  metric: number;
  /** (metric − corrupted) / (clean − corrupted). */
  normalized: number;
}

/** Edge indices by decreasing |score| (ties: lower index first). */
export function rankEdges(scores: ArrayLike<number>): number[] {
  const order = Array.from({ length: scores.length }, (_, i) => i);
  return order.sort((a, b) => Math.abs(scores[b]) - Math.abs(scores[a]) || a - b);
}

export function selectCircuit(graph: EdgeGraph, ranked: readonly number[], topN: number): number[] {
  return pruneToPaths(graph, ranked.slice(0, topN));
}

function evaluatePoint(
  task: CircuitTask,
  ranked: readonly number[],
  topN: number,
): CurvePoint & { kept: number[] } {
  const kept = selectCircuit(task.graph, ranked, topN);
  const mask = new Float32Array(task.graph.nEdges);
  for (const e of kept) mask[e] = 1;
  const metric = task.evaluate(mask);
  return { topN, edges: kept.length, metric, normalized: task.normalize(metric), kept };
}

/** 1, 2, 4, ... and every edge: the sizes a faithfulness curve is drawn at. */
export function curveSizes(nEdges: number): number[] {
  const sizes: number[] = [];
  for (let n = 1; n < nEdges; n *= 2) sizes.push(n);
  sizes.push(nEdges);
  return sizes;
}

export interface CircuitSearch {
  /** The chosen circuit's edge indices (pruned). */
  kept: number[];
  point: CurvePoint;
  /** Every point evaluated, by topN. */
  curve: CurvePoint[];
  /** False when even every edge does not reach the target (then `kept` is every edge on a path). */
  reached: boolean;
}

/**
 * The smallest top-n circuit reaching `target` faithfulness: the curve at doubling n, then a bisection
 * between the last size below the target and the first at or above it. Faithfulness need not grow
 * monotonically with n, so this is the smallest found along that search, not a proven minimum.
 */
export async function smallestFaithful(
  task: CircuitTask,
  ranked: readonly number[],
  target: number,
  onProgress?: Progress,
  signal?: AbortSignal,
): Promise<CircuitSearch> {
  const sizes = curveSizes(ranked.length);
  const points = new Map<number, CurvePoint & { kept: number[] }>();
  const at = async (n: number) => {
    await checkpointYield(signal, patchAborted);
    let p = points.get(n);
    if (!p) {
      p = evaluatePoint(task, ranked, n);
      points.set(n, p);
    }
    return p;
  };
  const total = sizes.length + Math.ceil(Math.log2(ranked.length + 1));
  for (const [i, n] of sizes.entries()) {
    await at(n);
    onProgress?.(i + 1, total);
  }
  const firstOk = sizes.findIndex((n) => (points.get(n) as CurvePoint).normalized >= target);
  let best: (CurvePoint & { kept: number[] }) | null = null;
  if (firstOk >= 0) {
    let lo = firstOk === 0 ? 0 : sizes[firstOk - 1]; // below target (or nothing)
    let hi = sizes[firstOk];
    let step = sizes.length;
    while (hi - lo > 1) {
      const mid = Math.floor((lo + hi) / 2);
      if ((await at(mid)).normalized >= target) hi = mid;
      else lo = mid;
      onProgress?.(++step, total);
    }
    best = await at(hi);
  }
  const curve = [...points.values()].sort((a, b) => a.topN - b.topN);
  const chosen = best ?? (points.get(ranked.length) as CurvePoint & { kept: number[] });
  const { kept, ...point } = chosen;
  return { kept, point, curve: curve.map(({ kept: _k, ...p }) => p), reached: best !== null };
}

/** The circuit of the top n edges (pruned), and the faithfulness curve at the usual sizes and n. */
export async function topNCircuit(
  task: CircuitTask,
  ranked: readonly number[],
  topN: number,
  onProgress?: Progress,
  signal?: AbortSignal,
): Promise<CircuitSearch> {
  const n = Math.min(topN, ranked.length);
  const sizes = [...new Set([...curveSizes(ranked.length), n])].sort((a, b) => a - b);
  const curve: (CurvePoint & { kept: number[] })[] = [];
  for (const [i, s] of sizes.entries()) {
    await checkpointYield(signal, patchAborted);
    curve.push(evaluatePoint(task, ranked, s));
    onProgress?.(i + 1, sizes.length);
  }
  const { kept, ...point } = curve[sizes.indexOf(n)];
  return { kept, point, curve: curve.map(({ kept: _k, ...p }) => p), reached: true };
}
