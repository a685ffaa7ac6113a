/**
 * How a chart sizes itself to its container in the browser. The spec as built has a fixed size (what the
 * SVG export draws); `usermeta.fit` tells the browser mount which size to change so the drawing fills the
 * container's width without overflowing it. Pure data and functions: bundled into the browser code.
 */
import type { TopLevelSpec } from "vega-lite";

export interface ChartFit {
  /**
   * "step": the width is `units` bands of `step` px each (heatmap cells, bars); heatmaps also set the
   * row height to the same step so cells stay square-ish. "width": the plot width itself is the step.
   */
  mode: "step" | "width";
  /** Bands across one row of the drawing (e.g. columns x panels side by side); 1 in "width" mode. */
  units: number;
  minStep: number;
  maxStep: number;
  /** Heatmaps: rows get the same step as columns (clamped to [minStep, maxStep]). */
  squareRows?: boolean;
}

export const FIT_KEY = "circuitscopeFit";

export function fitOf(spec: TopLevelSpec): ChartFit | undefined {
  return (spec.usermeta as Record<string, ChartFit> | undefined)?.[FIT_KEY];
}

/** The plot spec inside a facet (`spec.spec`), or the top-level spec of a single view. */
function viewSpec(spec: TopLevelSpec): Record<string, unknown> {
  const inner = (spec as { spec?: Record<string, unknown> }).spec;
  return inner ?? (spec as unknown as Record<string, unknown>);
}

/** The current step of a fitted spec (band width, or plot width in "width" mode). */
export function stepOf(spec: TopLevelSpec): number | undefined {
  const fit = fitOf(spec);
  if (!fit) return undefined;
  const width = viewSpec(spec).width as number | { step: number };
  return typeof width === "number" ? width : width.step;
}

/** A copy of `spec` drawn with `step` (clamped to the fit's range). */
export function withStep(spec: TopLevelSpec, step: number): TopLevelSpec {
  const fit = fitOf(spec);
  if (!fit) return spec;
  const s = Math.max(fit.minStep, Math.min(fit.maxStep, Math.floor(step)));
  const copy = structuredClone(spec);
  const view = viewSpec(copy);
  if (fit.mode === "width") view.width = s;
  else {
    view.width = { step: s };
    if (fit.squareRows) view.height = { step: s };
  }
  return copy;
}

/**
 * The step that makes a drawing `drawnWidth` px wide at `step` fit `available` px: everything that is not
 * bands (labels, legend, padding) is assumed not to depend on the step.
 */
export function fittedStep(fit: ChartFit, step: number, drawnWidth: number, available: number): number {
  const overhead = drawnWidth - step * fit.units;
  const s = Math.floor((available - overhead) / fit.units);
  return Math.max(fit.minStep, Math.min(fit.maxStep, s));
}
