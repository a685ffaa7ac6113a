/** Input checks shared by the chart builders: each error names the problem and how to fix it. */

export function requireNonEmpty(what: string, n: number): void {
  if (n === 0) throw new Error(`${what} is empty: pass at least one entry to draw a figure.`);
}

export function requireLength(
  what: string,
  arr: readonly unknown[],
  expected: number,
  against: string,
): void {
  if (arr.length !== expected) {
    throw new Error(
      `${what} has ${arr.length} entries but ${against} has ${expected}: pass one ${what} entry per ${against} entry.`,
    );
  }
}

export function requireFinite(what: string, values: readonly number[]): void {
  values.forEach((v, i) => {
    if (typeof v !== "number" || !Number.isFinite(v)) {
      throw new Error(`${what}[${i}] is ${v}, not a finite number: drop or fix that entry before plotting.`);
    }
  });
}

/** d3-format used by every chart tooltip and by `formatValue` for the hand-written views: 4 significant digits. */
export const VALUE_FORMAT = ".4~r";

/** Axis label settings that keep long token labels readable instead of silently truncated. */
export function bandAxisLabels(labels: readonly string[]): { labelAngle: number; labelLimit: number } {
  const longest = labels.reduce((m, l) => Math.max(m, l.length), 0);
  return { labelAngle: longest > 3 || labels.length > 16 ? -50 : 0, labelLimit: 180 };
}

/**
 * Vega config shared by every chart: no truncated legend labels or titles (Vega cuts them at 160-180 px
 * with "…" by default, which hid "clean (contraction…" in exports); SVG export sizes itself around them.
 */
export const CHART_CONFIG = {
  legend: { labelLimit: 0, titleLimit: 0 },
  axis: { titleFontSize: 12, labelFontSize: 11 },
  title: { limit: 0 },
} as const;

/** Fill of a heatmap cell that was not computed: mid grey, far from white (0) and from both ends of the scale. */
export const NOT_COMPUTED_FILL = "#9e9e9e";
export const NOT_COMPUTED = "not computed";

/**
 * How series i is drawn: a colour, and past the palette's length a dash pattern too, so no two series of a
 * figure look alike (13 groups with 10 colours used to repeat blue, orange and red). More series than
 * colours x dashes is refused: facet the figure instead.
 */
export function seriesStyle(i: number): { colour: string; dash: number[] } {
  const k = Math.floor(i / SERIES_COLOURS.length);
  if (k >= SERIES_DASHES.length)
    throw new Error(
      `${i + 1} series is more than ${SERIES_COLOURS.length * SERIES_DASHES.length} distinct line styles: split the series over several figures (facets).`,
    );
  return { colour: SERIES_COLOURS[i % SERIES_COLOURS.length], dash: [...SERIES_DASHES[k]] };
}

/** Dash patterns of each further round of colours (solid first). */
export const SERIES_DASHES = [
  [1, 0],
  [6, 3],
  [2, 2],
  [10, 3, 2, 3],
  [14, 4],
  [4, 3, 1, 3],
  [1, 4],
] as const;

/** Series colours (Vega's tableau10), assigned in series order. */
export const SERIES_COLOURS = [
  "#4c78a8",
  "#f58518",
  "#e45756",
  "#72b7b2",
  "#54a24b",
  "#eeca3b",
  "#b279a2",
  "#ff9da6",
  "#9d755d",
  "#bab0ac",
] as const;
