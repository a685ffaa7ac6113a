/** Number formatting and small grid helpers shared by the stages' captions and findings. */
import { preCapNote } from "../analysis/logit-attribution.ts";
import { formatMeanCi, formatSigned } from "../analysis/stats.ts";
import type { StudyResults } from "./results.ts";
import type { GridSummary } from "./summaries.ts";

export const f2 = (x: number) => x.toFixed(2);
/** A signed difference for captions: "+0.78", "−0.44". */
export const signed = formatSigned;
export const pct = (x: number) => `${(100 * x).toFixed(0)}%`;

export function pFmt(p: number): string {
  return p < 0.001 ? p.toExponential(1) : p.toFixed(3);
}

export function argmaxAbs(grid: Pick<GridSummary, "mean">): { r: number; c: number } {
  let best = { r: 0, c: 0 };
  for (const [r, row] of grid.mean.entries()) {
    for (const [c, v] of row.entries()) {
      if (Math.abs(v) > Math.abs(grid.mean[best.r][best.c])) best = { r, c };
    }
  }
  return best;
}

/** A 95% interval that excludes 0. */
export const excludesZero = (s: { ciLow: number; ciHigh: number }) => s.ciLow > 0 || s.ciHigh < 0;

/** "mean [lo, hi]", saying so when the interval includes 0. */
export function ciText(s: { mean: number; ciLow: number; ciHigh: number }): string {
  return `${formatMeanCi(s)}${excludesZero(s) ? "" : " (interval includes 0)"}`;
}

/** The study's model's final-logit soft-cap (its config is in the results' meta); null when it has none. */
export function modelSoftCap(res: Pick<StudyResults, "meta">): number | null {
  const cap = res.meta.modelConfig.finalSoftCap;
  return typeof cap === "number" ? cap : null;
}

/** preCapNote for the study's model: "" unless it soft-caps its logits. */
export function modelPreCapNote(res: Pick<StudyResults, "meta">): string {
  return preCapNote(modelSoftCap(res));
}
