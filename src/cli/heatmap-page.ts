import type { HeatmapOptions } from "../viz/index.ts";

export interface HeatmapSection {
  heading: string;
  text: string;
  heatmap: HeatmapOptions;
}

/** A self-contained HTML page with one heatmap per section (used by commands whose result is per-head grids). */
export async function writeHeatmapPage(
  path: string,
  title: string,
  sections: readonly HeatmapSection[],
): Promise<void> {
  const viz = await import("../viz/index.ts");
  viz.writeHtmlReport(path, {
    title,
    sections: sections.map((s) => ({
      heading: s.heading,
      text: s.text,
      figures: [{ figure: viz.heatmap(s.heatmap) }],
    })),
  });
}

/** The `k` largest cells of a [rows][cols] grid (strictly positive ones only with `positiveOnly`), largest first. */
export function largestCells(
  grid: readonly (readonly number[])[],
  k: number,
  positiveOnly = false,
): { row: number; col: number; value: number }[] {
  return grid
    .flatMap((r, row) => r.map((value, col) => ({ row, col, value })))
    .filter((c) => !positiveOnly || c.value > 0)
    .sort((a, b) => b.value - a.value)
    .slice(0, k);
}
