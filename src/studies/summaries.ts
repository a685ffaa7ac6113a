/**
 * Per-prompt measurements → means with uncertainty, in the shapes the results file and figures use:
 * a scalar, a labelled series (e.g. per layer) and a labelled grid (e.g. layer x head).
 */
import { type BootstrapOptions, type MeanSummary, summarize } from "../analysis/stats.ts";

/** A mean over prompts with standard error and bootstrap interval (the level is stated once, in meta). */
export type Summary = Omit<MeanSummary, "level">;

/** A summary plus the per-prompt values behind it (kept in results.json so any number can be recomputed). */
export interface SampleSummary extends Summary {
  perPrompt: number[];
}

export interface SeriesSummary {
  labels: string[];
  n: number;
  mean: number[];
  se: number[];
  ciLow: number[];
  ciHigh: number[];
  /** The values behind the means, [prompt][label]. */
  perPrompt: number[][];
}

export interface GridSummary {
  rowLabels: string[];
  colLabels: string[];
  n: number;
  mean: number[][];
  se: number[][];
  ciLow: number[][];
  ciHigh: number[][];
  /** The values behind the means, [prompt][row][col]. */
  perPrompt: number[][][];
}

export function summarizeSample(perPrompt: readonly number[], boot: BootstrapOptions): SampleSummary {
  const s = summarize(perPrompt, boot);
  return {
    n: s.n,
    mean: s.mean,
    sd: s.sd,
    se: s.se,
    ciLow: s.ciLow,
    ciHigh: s.ciHigh,
    perPrompt: [...perPrompt],
  };
}

/** perPrompt[prompt][i] → a summary per label i. */
export function summarizeSeries(
  labels: readonly string[],
  perPrompt: readonly (readonly number[])[],
  boot: BootstrapOptions,
): SeriesSummary {
  const out: SeriesSummary = {
    labels: [...labels],
    n: perPrompt.length,
    mean: [],
    se: [],
    ciLow: [],
    ciHigh: [],
    perPrompt: perPrompt.map((row) => [...row]),
  };
  labels.forEach((label, i) => {
    const column = perPrompt.map((row, p) => {
      if (row.length !== labels.length) {
        throw new Error(
          `prompt ${p} has ${row.length} values but there are ${labels.length} labels (${label}...)`,
        );
      }
      return row[i];
    });
    // A distinct seed per cell keeps cells' resampling independent yet reproducible.
    const s = summarize(column, { ...boot, seed: (boot.seed ?? 0) + i });
    out.mean.push(s.mean);
    out.se.push(s.se);
    out.ciLow.push(s.ciLow);
    out.ciHigh.push(s.ciHigh);
  });
  return out;
}

/** perPrompt[prompt][row][col] → a summary per cell. */
export function summarizeGrid(
  rowLabels: readonly string[],
  colLabels: readonly string[],
  perPrompt: readonly (readonly (readonly number[])[])[],
  boot: BootstrapOptions,
): GridSummary {
  const out: GridSummary = {
    rowLabels: [...rowLabels],
    colLabels: [...colLabels],
    n: perPrompt.length,
    mean: [],
    se: [],
    ciLow: [],
    ciHigh: [],
    perPrompt: perPrompt.map((grid) => grid.map((row) => [...row])),
  };
  rowLabels.forEach((_, r) => {
    const series = summarizeSeries(
      colLabels,
      perPrompt.map((grid) => grid[r]),
      { ...boot, seed: (boot.seed ?? 0) + r * colLabels.length },
    );
    out.mean.push(series.mean);
    out.se.push(series.se);
    out.ciLow.push(series.ciLow);
    out.ciHigh.push(series.ciHigh);
  });
  return out;
}

/** One cell of a grid, as a labelled summary. */
export interface RankedCell {
  label: string;
  row: number;
  col: number;
  mean: number;
  se: number;
  ciLow: number;
  ciHigh: number;
}

/** The k cells with the largest |mean| (ties broken by position), labelled by `label(row, col)`. */
export function topCells(
  grid: GridSummary,
  k: number,
  label: (row: number, col: number) => string,
): RankedCell[] {
  const cells: RankedCell[] = [];
  for (const [r, row] of grid.mean.entries()) {
    for (const [c, mean] of row.entries()) {
      cells.push({
        label: label(r, c),
        row: r,
        col: c,
        mean,
        se: grid.se[r][c],
        ciLow: grid.ciLow[r][c],
        ciHigh: grid.ciHigh[r][c],
      });
    }
  }
  cells.sort((a, b) => Math.abs(b.mean) - Math.abs(a.mean) || a.row - b.row || a.col - b.col);
  return cells.slice(0, k);
}

/** Indices of the k largest |values| (ties broken by index). */
export function topIndices(values: readonly number[], k: number): number[] {
  return values
    .map((v, i) => [Math.abs(v), i] as const)
    .sort((a, b) => b[0] - a[0] || a[1] - b[1])
    .slice(0, k)
    .map(([, i]) => i);
}
