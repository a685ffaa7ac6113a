/**
 * The one builder of a PatchResult, shared by the exact, straightforward and attribution paths: they
 * differ in how they get each patched run's metric, never in how a result is labelled or normalised.
 */
import { normalise } from "../analysis/answer-metrics.ts";
import type { HookedTransformer } from "../model/hooked-transformer.ts";
import { TensorView } from "../tensor/tensor-view.ts";
import type { PromptPairs } from "./pairs.ts";
import { HEAD_COMPONENTS, type PatchPlan } from "./targets.ts";
import type { PatchIndex, PatchResult, PatchResultData } from "./types.ts";

export interface PatchMetricValues {
  /** Batch metric of the clean and the corrupted runs. */
  clean: number;
  corrupted: number;
  /** Each prompt's own metric on its clean and corrupted run. */
  cleanPer: readonly number[];
  corruptedPer: readonly number[];
  /** [site]: the batch metric of each patched run (or its estimate). */
  raw: Float64Array;
  /** [prompt, site]: each prompt's own metric under each patch. */
  perRaw: Float64Array;
}

/** Labels of a result axis: `positionLabels` for "pos", component names for "component". */
export function axisLabels(axis: string, posLabels: string[] | null): string[] | null {
  if (axis === "pos") return posLabels;
  if (axis === "component") return [...HEAD_COMPONENTS];
  return null;
}

export function buildPatchResult(opts: {
  model: HookedTransformer;
  pairs: PromptPairs;
  plan: PatchPlan;
  metric: PatchMetricValues;
  method: string;
}): PatchResult {
  const { model, pairs, plan, metric, method } = opts;
  const posLabels = positionLabels(model, pairs);
  const cfg = model.cfg;
  return resultFromMetrics({
    target: plan.target,
    axes: plan.axes,
    shape: plan.shape,
    labels: plan.axes.map((a) => axisLabels(a, posLabels)),
    metric,
    method,
    ...(plan.axes[0] === "component" && cfg.nKvHeads < cfg.nHeads
      ? { kvGroupSize: cfg.nHeads / cfg.nKvHeads }
      : {}),
  });
}

/**
 * The result of metric values already read (one run's, or the pairs of several shards combined): the batch
 * values and each prompt's normalised by its clean and corrupted metric.
 */
export function resultFromMetrics(opts: {
  target: string;
  axes: string[];
  shape: number[];
  labels: (string[] | null)[];
  metric: PatchMetricValues;
  method: string;
  kvGroupSize?: number;
}): PatchResult {
  const { metric: m } = opts;
  const nSites = m.raw.length;
  const nPrompts = m.cleanPer.length;
  const values = m.raw.map((r) => normalise(r, m.clean, m.corrupted));
  const perValues = new Float64Array(nPrompts * nSites);
  for (let b = 0; b < nPrompts; b++)
    for (let s = 0; s < nSites; s++)
      perValues[b * nSites + s] = normalise(m.perRaw[b * nSites + s], m.cleanPer[b], m.corruptedPer[b]);
  return patchResult({
    target: opts.target,
    axes: opts.axes,
    shape: opts.shape,
    labels: opts.labels,
    values,
    raw: m.raw,
    clean: m.clean,
    corrupted: m.corrupted,
    perPrompt: { raw: m.perRaw, values: perValues, clean: [...m.cleanPer], corrupted: [...m.corruptedPer] },
    method: opts.method,
    ...(opts.kvGroupSize !== undefined ? { kvGroupSize: opts.kvGroupSize } : {}),
  });
}

/** A result's data with access by axis name (`at`) attached, not enumerable, so JSON stays the data. */
export function patchResult(data: PatchResultData): PatchResult {
  const at = (index: PatchIndex): number => cellView(data, index).get(...cellIndex(data, index));
  return Object.defineProperty(data, "at", { value: at, enumerable: false }) as PatchResult;
}

function cellView(r: PatchResultData, index: PatchIndex): TensorView<Float64Array> {
  return "prompt" in index
    ? TensorView.of(r.perPrompt.values, [r.perPrompt.clean.length, ...r.shape], ["prompt", ...r.axes])
    : TensorView.of(r.values, r.shape, r.axes);
}

function cellIndex(r: PatchResultData, index: PatchIndex): number[] {
  const axes = "prompt" in index ? ["prompt", ...r.axes] : r.axes;
  const unknown = Object.keys(index).filter((k) => !axes.includes(k));
  const missing = axes.filter((a) => !(a in index));
  if (unknown.length > 0 || missing.length > 0)
    throw new Error(
      `A ${r.target} result is indexed by { ${r.axes.join(", ")} } (and optionally prompt)` +
        (missing.length > 0 ? `; missing ${missing.join(", ")}` : "") +
        (unknown.length > 0 ? `; no axis ${unknown.join(", ")}` : ""),
    );
  return axes.map((a) => index[a]);
}

/**
 * Names of the position axis that hold for every prompt: at each position the clean token, or the clean
 * tokens of all prompts joined by "|" where they differ ("·Lily|·Tim"). None (plain indices) when the pairs
 * differ in length: position p is then a different place in different prompts, so no token names it.
 */
export function positionLabels(
  model: { toStrTokens(tokens: readonly number[]): string[] },
  pairs: Pick<PromptPairs, "clean" | "lengths">,
): string[] | null {
  if (pairs.lengths.some((n) => n !== pairs.lengths[0])) return null;
  return agreeingLabels(pairs.clean.map((t) => model.toStrTokens(t)));
}

/** Per position, the token every prompt has there, or all of them joined by "|"; null for unequal lengths. */
export function agreeingLabels(strTokens: readonly (readonly string[])[]): string[] | null {
  if (strTokens.some((s) => s.length !== strTokens[0].length)) return null;
  return strTokens[0].map((_, p) => [...new Set(strTokens.map((s) => s[p]))].join("|"));
}
