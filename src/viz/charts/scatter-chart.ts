import type { TopLevelSpec } from "vega-lite";
import type { ChartFigure } from "../figure.ts";
import {
  CHART_CONFIG,
  requireFinite,
  requireNonEmpty,
  SERIES_COLOURS,
  seriesStyle,
  VALUE_FORMAT,
} from "./chart-input.ts";

export interface ScatterPoint {
  x: number;
  y: number;
  /** Shown on hover, e.g. "L9H6". */
  label: string;
  /** Optional colour group, e.g. "head" / "neuron". */
  group?: string;
}

export interface ScatterChartOptions {
  title: string;
  points: ScatterPoint[];
  xTitle?: string;
  yTitle?: string;
  /** Draw y = x, e.g. for attribution estimate vs exact patching. */
  identityLine?: boolean;
}

export function scatterChart(opts: ScatterChartOptions): ChartFigure {
  requireNonEmpty("points", opts.points.length);
  requireFinite(
    "points x",
    opts.points.map((p) => p.x),
  );
  requireFinite(
    "points y",
    opts.points.map((p) => p.y),
  );
  const grouped = opts.points.some((p) => p.group !== undefined);
  const rows = opts.points.map((p) => ({ x: p.x, y: p.y, label: p.label, group: p.group ?? "" }));
  const xTitle = opts.xTitle ?? "x";
  const yTitle = opts.yTitle ?? "y";
  const layers: NonNullable<Extract<TopLevelSpec, { layer: unknown }>["layer"]> = [];
  if (opts.identityLine) {
    const all = opts.points.flatMap((p) => [p.x, p.y]);
    const lo = Math.min(...all);
    const hi = Math.max(...all);
    layers.push({
      data: { values: [{ a: lo, b: hi }] },
      mark: { type: "rule", color: "#888", strokeDash: [4, 3] },
      encoding: {
        x: { field: "a", type: "quantitative" },
        y: { field: "a", type: "quantitative" },
        x2: { field: "b" },
        y2: { field: "b" },
      },
    });
  }
  layers.push({
    mark: { type: "point", filled: true, size: 50, opacity: 0.8 },
    encoding: {
      x: { field: "x", type: "quantitative", title: xTitle },
      y: { field: "y", type: "quantitative", title: yTitle },
      ...(grouped ? groupEncoding([...new Set(rows.map((r) => r.group))]) : {}),
      tooltip: [
        { field: "label", type: "nominal", title: "label" },
        { field: "x", type: "quantitative", title: xTitle, format: VALUE_FORMAT },
        { field: "y", type: "quantitative", title: yTitle, format: VALUE_FORMAT },
      ],
    },
  });
  const spec: TopLevelSpec = {
    $schema: "https://vega.github.io/schema/vega-lite/v6.json",
    title: opts.title,
    width: 420,
    height: 420,
    data: { values: rows },
    layer: layers,
    config: CHART_CONFIG,
  };
  return { kind: "scatter", title: opts.title, spec, data: { points: opts.points } };
}

/** Shapes of each further round of colours (circles first; one per SERIES_DASHES round): no two groups look alike. */
const GROUP_SHAPES = ["circle", "square", "triangle-up", "diamond", "cross", "triangle-down", "wedge"];

/**
 * Colour (and past the palette, shape) per group, with one legend listing every group; ordered by the scales'
 * domains (a sort array holding "constructor" or "toString" breaks Vega's runtime).
 */
function groupEncoding(groups: string[]) {
  const styles = groups.map((_, i) => seriesStyle(i));
  const legend = { title: null, symbolLimit: 0 };
  // Shapes only once colours run out: Vega's runtime rejects the merged colour-and-shape legend when a group is
  // named "constructor" or "toString", so up to the palette's size (the usual case) colour alone names a group.
  const shapes = groups.length > SERIES_COLOURS.length;
  return {
    color: {
      field: "group",
      type: "nominal" as const,
      scale: { domain: groups, range: styles.map((st) => st.colour) },
      legend,
    },
    ...(shapes
      ? {
          shape: {
            field: "group",
            type: "nominal" as const,
            scale: {
              domain: groups,
              range: groups.map((_, i) => GROUP_SHAPES[Math.floor(i / SERIES_COLOURS.length)]),
            },
            legend,
          },
        }
      : {}),
  };
}
