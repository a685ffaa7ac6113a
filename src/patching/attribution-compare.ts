/**
 * Attribution patching checked against exact activation patching on the same targets: per target, how
 * well the linear estimate tracks the real effect (correlation, slope) and where it is most wrong.
 */

import { type LinearAgreement, linearAgreement } from "../analysis/correlation.ts";
import { formatSigned } from "../analysis/stats.ts";
import type { HookedTransformer } from "../model/hooked-transformer.ts";
import { unravelIndex } from "../tensor/tensor.ts";
import { activationPatching } from "./activation-patching.ts";
import { type AttributionOptions, attributionPatchingAll } from "./attribution-patching.ts";
import { cellLabel } from "./result-format.ts";
import type { PatchMetric, PatchResult } from "./types.ts";

export interface Disagreement {
  /** Index along each of the result's axes. */
  index: number[];
  label: string;
  estimate: number;
  exact: number;
}

export interface TargetComparison extends LinearAgreement {
  target: string;
  /** Largest |estimate - exact| first (normalised values). */
  worst: Disagreement[];
  estimate: PatchResult;
  exact: PatchResult;
}

export interface CompareOptions extends AttributionOptions {
  metric?: PatchMetric;
  /** How many of the largest disagreements to list per target (default 5). */
  worst?: number;
  /** Passed to exact patching. */
  chunkSize?: number;
  rowBudget?: number;
  signal?: AbortSignal;
  /** Progress of the exact sweep of each target in turn (the attribution pass is quick and silent). */
  onProgress?: (done: number, total: number) => void;
}

/**
 * Runs attribution patching and exact patching on every target and compares their normalised values.
 * Correlation and slope are of the least-squares line estimate ≈ slope · exact + intercept: slope 1 and
 * correlation 1 mean the estimate can stand in for the exact sweep.
 */
export async function compareAttribution(
  model: HookedTransformer,
  opts: CompareOptions,
): Promise<TargetComparison[]> {
  const estimates = attributionPatchingAll(model, { ...opts, onProgress: undefined });
  const out: TargetComparison[] = [];
  for (let i = 0; i < opts.targets.length; i++) {
    const exact = await activationPatching(model, {
      ...opts,
      target: opts.targets[i],
      method: "exact",
      onProgress: opts.onProgress,
    });
    const estimate = estimates[i];
    out.push({
      target: estimate.target,
      ...linearAgreement(exact.values, estimate.values),
      worst: largestDisagreements(estimate, exact, opts.worst ?? 5),
      estimate,
      exact,
    });
  }
  return out;
}

/** The k cells where estimate and exact differ most; cells with one name (a shared key/value head's) count once. */
export function largestDisagreements(estimate: PatchResult, exact: PatchResult, k: number): Disagreement[] {
  const order = Array.from(estimate.values.keys()).sort(
    (a, b) => Math.abs(estimate.values[b] - exact.values[b]) - Math.abs(estimate.values[a] - exact.values[a]),
  );
  const out: Disagreement[] = [];
  const seen = new Set<string>();
  for (const flat of order) {
    if (out.length === k) break;
    const label = cellLabel(exact, flat);
    if (seen.has(label)) continue;
    seen.add(label);
    out.push({
      index: unravelIndex(flat, estimate.shape),
      label,
      estimate: estimate.values[flat],
      exact: exact.values[flat],
    });
  }
  return out;
}

/** JSON per target: { correlation, slope, intercept, n, worst: [{ index, label, estimate, exact }] }. */
export function comparisonJson(cmps: readonly TargetComparison[]): Record<string, unknown> {
  return Object.fromEntries(
    cmps.map((c) => [
      c.target,
      { correlation: c.correlation, slope: c.slope, intercept: c.intercept, n: c.n, worst: c.worst },
    ]),
  );
}

export function formatComparison(cmps: readonly TargetComparison[]): string {
  const lines: string[] = [];
  for (const c of cmps) {
    lines.push(
      `${c.target}: correlation ${c.correlation.toFixed(3)}, slope ${c.slope.toFixed(3)} ` +
        // "exact − 0.003", not "exact + -0.003".
        `(estimate ≈ slope · exact ${formatSigned(c.intercept, 3).replace(/^([+−])/, "$1 ")}; ${c.n} cells)`,
    );
    lines.push("  largest disagreements (normalised):");
    for (const w of c.worst)
      lines.push(
        `    ${w.label.padEnd(30)} estimate ${w.estimate.toFixed(4).padStart(9)}  exact ${w.exact.toFixed(4).padStart(9)}`,
      );
  }
  return lines.join("\n");
}
