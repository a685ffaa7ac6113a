/**
 * Attribution patching checked against exact activation patching on the same targets: per target, how
 * well the linear estimate tracks the real effect (correlation, slope) and where it is most wrong.
 */

import { type LinearAgreement, linearAgreement } from "../analysis/correlation.ts";
import type { HookedTransformer } from "../model/hooked-transformer.ts";
import { formatToken } from "../tokenizer/format-token.ts";
import { activationPatching } from "./activation-patching.ts";
import {
  type AttributionOptions,
  type AttributionTarget,
  attributionPatchingAll,
} from "./attribution-patching.ts";
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
    const exact = await exactPatching(model, opts, opts.targets[i], (d, t) => opts.onProgress?.(d, t));
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

/** Exact patching of an attribution target (all-layer neurons: one sweep per layer, stacked). */
async function exactPatching(
  model: HookedTransformer,
  opts: CompareOptions,
  target: AttributionTarget,
  onProgress: (done: number, total: number) => void,
): Promise<PatchResult> {
  const base = {
    clean: opts.clean,
    corrupted: opts.corrupted,
    answers: opts.answers,
    metric: opts.metric,
    prependBos: opts.prependBos,
    chunkSize: opts.chunkSize,
    rowBudget: opts.rowBudget,
    signal: opts.signal,
    method: "exact" as const,
  };
  if (target.kind !== "neurons" || target.layer !== undefined) {
    return activationPatching(model, {
      ...base,
      target: target as Parameters<typeof activationPatching>[1]["target"],
      onProgress,
    });
  }
  const L = model.cfg.nLayers;
  const layers: PatchResult[] = [];
  for (let layer = 0; layer < L; layer++) {
    layers.push(
      await activationPatching(model, {
        ...base,
        target: { kind: "neurons", layer, pos: target.pos },
        onProgress: (d, t) => onProgress(layer * t + d, L * t),
      }),
    );
  }
  const cat = (f: (r: PatchResult) => Float64Array) => Float64Array.from(layers.flatMap((r) => [...f(r)]));
  const B = layers[0].perPrompt.clean.length;
  const perPromptCat = (f: (r: PatchResult) => Float64Array) =>
    Float64Array.from(
      Array.from({ length: B }, (_, b) =>
        layers.flatMap((r) => {
          const n = r.values.length;
          return [...f(r).subarray(b * n, (b + 1) * n)];
        }),
      ).flat(),
    );
  return {
    ...layers[0],
    target: "neurons",
    axes: ["layer", "neuron"],
    shape: [L, model.cfg.dMlp],
    labels: [null, null],
    values: cat((r) => r.values),
    raw: cat((r) => r.raw),
    perPrompt: {
      ...layers[0].perPrompt,
      raw: perPromptCat((r) => r.perPrompt.raw),
      values: perPromptCat((r) => r.perPrompt.values),
    },
  };
}

function unravel(flat: number, shape: readonly number[]): number[] {
  const index = new Array<number>(shape.length);
  for (let a = shape.length - 1; a >= 0; a--) {
    index[a] = flat % shape[a];
    flat = Math.floor(flat / shape[a]);
  }
  return index;
}

/** E.g. "layer 2, pos 5 ' friend'", "layer 1, head 3". */
export function locationLabel(r: PatchResult, index: readonly number[]): string {
  return r.axes
    .map((a, i) => {
      const tok = r.labels[i]?.[index[i]];
      return tok === undefined ? `${a} ${index[i]}` : `${a} ${index[i]} ${formatToken(tok)}`;
    })
    .join(", ");
}

export function largestDisagreements(estimate: PatchResult, exact: PatchResult, k: number): Disagreement[] {
  const order = Array.from(estimate.values.keys()).sort(
    (a, b) => Math.abs(estimate.values[b] - exact.values[b]) - Math.abs(estimate.values[a] - exact.values[a]),
  );
  return order.slice(0, k).map((flat) => {
    const index = unravel(flat, estimate.shape);
    return {
      index,
      label: locationLabel(exact, index),
      estimate: estimate.values[flat],
      exact: exact.values[flat],
    };
  });
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
        `(estimate ≈ slope · exact + ${c.intercept.toFixed(3)}; ${c.n} cells)`,
    );
    lines.push("  largest disagreements (fraction restored):");
    for (const w of c.worst)
      lines.push(
        `    ${w.label.padEnd(30)} estimate ${w.estimate.toFixed(4).padStart(9)}  exact ${w.exact.toFixed(4).padStart(9)}`,
      );
  }
  return lines.join("\n");
}
