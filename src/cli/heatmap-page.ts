import type { HeatmapOptions } from "../viz/index.ts";

export interface HeatmapSection {
  heading: string;
  text: string;
  heatmap: HeatmapOptions;
}

/**
 * A self-contained HTML page with one heatmap per section (used by commands whose result is per-head
 * grids). The sections show one quantity, so they share ONE colour domain: the same colour is the same
 * value in every heatmap of the page.
 */
export async function writeHeatmapPage(
  path: string,
  title: string,
  sections: readonly HeatmapSection[],
  inputs?: { label: string; value: string | string[] }[],
): Promise<void> {
  const viz = await import("../viz/index.ts");
  const domain = viz.sharedHeatmapDomain(sections.map((s) => s.heatmap));
  const shared = sections.length > 1 ? " All heatmaps on this page share one colour scale." : "";
  viz.writeHtmlReport(path, {
    title,
    sections: sections.map((s, k) => ({
      heading: s.heading,
      ...(k === 0 && inputs ? { inputs } : {}),
      text: `${s.text}${shared}`,
      figures: [{ figure: viz.heatmap({ ...s.heatmap, domain }) }],
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
