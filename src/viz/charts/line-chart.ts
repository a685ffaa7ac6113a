import type { TopLevelSpec } from "vega-lite";
import type { ChartFigure } from "../figure.ts";
import { distinctLabels } from "../token-labels.ts";
import {
  bandAxisLabels,
  CHART_CONFIG,
  requireFinite,
  requireLength,
  requireNonEmpty,
  SERIES_COLOURS,
  VALUE_FORMAT,
} from "./chart-input.ts";
import { type ChartFit, FIT_KEY } from "./fit.ts";

export interface LineSeries {
  /** Legend entry, e.g. an experimental group ("clean", "corrupted"). */
  name: string;
  values: number[];
  /** Optional confidence band: lower[i] <= values[i] <= upper[i]. */
  lower?: number[];
  upper?: number[];
}

export interface LineChartOptions {
  title: string;
  /** X positions: strings are kept in the given order (e.g. "embed", "L0", ...); all-numbers gives a numeric axis. */
  x: (string | number)[];
  series: LineSeries[];
  xTitle?: string;
  yTitle?: string;
  /** Draw a horizontal rule at y = 0 (default true: effects are read against zero). */
  zeroLine?: boolean;
}

/** Several series over the same x, e.g. logit difference after each layer, one line per group. */
export function lineChart(opts: LineChartOptions): ChartFigure {
  requireNonEmpty("x", opts.x.length);
  requireNonEmpty("series", opts.series.length);
  const numericX = opts.x.every((v) => typeof v === "number");
  const xs = numericX ? opts.x : distinctLabels(opts.x.map(String));
  const rows: Record<string, unknown>[] = [];
  let hasBand = false;
  for (const s of opts.series) {
    requireLength(`series "${s.name}" values`, s.values, opts.x.length, "x");
    requireFinite(`series "${s.name}" values`, s.values);
    if ((s.lower === undefined) !== (s.upper === undefined)) {
      throw new Error(
        `series "${s.name}" has only one of lower/upper: pass both to draw a band, or neither.`,
      );
    }
    if (s.lower && s.upper) {
      requireLength(`series "${s.name}" lower`, s.lower, opts.x.length, "x");
      requireLength(`series "${s.name}" upper`, s.upper, opts.x.length, "x");
      requireFinite(`series "${s.name}" lower`, s.lower);
      requireFinite(`series "${s.name}" upper`, s.upper);
      hasBand = true;
    }
    s.values.forEach((value, i) => {
      const row: Record<string, unknown> = { x: xs[i], series: s.name, band: s.name, value };
      if (s.lower && s.upper) Object.assign(row, { lower: s.lower[i], upper: s.upper[i] });
      rows.push(row);
    });
  }
  const names = opts.series.map((s) => s.name);
  const xEnc = numericX
    ? { field: "x", type: "quantitative" as const, title: opts.xTitle ?? null }
    : {
        field: "x",
        type: "ordinal" as const,
        sort: xs as string[],
        title: opts.xTitle ?? null,
        axis: bandAxisLabels(xs as string[]),
      };
  // One colour per series, fixed here so the band (fill) and the line (stroke) agree without sharing a
  // legend: the legend is the line's, so its swatch is the line colour, not the pale band.
  const scale = { domain: names, range: names.map((_, i) => SERIES_COLOURS[i % SERIES_COLOURS.length]) };
  // symbolLimit 0: list every series (one per experimental group can exceed Vega's default of 50 symbols).
  const color = {
    field: "series",
    type: "nominal" as const,
    sort: names,
    scale,
    legend: { title: null, symbolLimit: 0, symbolType: "stroke", symbolStrokeWidth: 3 },
  };
  // The band's own field name keeps Vega-Lite from merging its (hidden) legend into the line's.
  const bandFill = { field: "band", type: "nominal" as const, sort: names, scale, legend: null };
  const layers: NonNullable<Extract<TopLevelSpec, { layer: unknown }>["layer"]> = [];
  if (hasBand) {
    layers.push({
      transform: [{ filter: "isValid(datum.lower)" }],
      mark: { type: "area", opacity: 0.18 },
      encoding: {
        x: xEnc,
        y: { field: "lower", type: "quantitative" },
        y2: { field: "upper" },
        fill: bandFill,
      },
    });
  }
  layers.push({
    mark: { type: "line", point: { size: 40 } },
    encoding: {
      x: xEnc,
      y: { field: "value", type: "quantitative", title: opts.yTitle ?? null },
      color,
      tooltip: [
        { field: "series", type: "nominal", title: "series" },
        { field: "x", type: numericX ? "quantitative" : "ordinal", title: opts.xTitle ?? "x" },
        { field: "value", type: "quantitative", title: opts.yTitle ?? "value", format: VALUE_FORMAT },
        ...(hasBand
          ? [
              { field: "lower", type: "quantitative" as const, format: VALUE_FORMAT },
              { field: "upper", type: "quantitative" as const, format: VALUE_FORMAT },
            ]
          : []),
      ],
    },
  });
  if (opts.zeroLine ?? true) {
    layers.push({
      data: { values: [{ zero: 0 }] },
      mark: { type: "rule", color: "#888", strokeDash: [4, 3] },
      encoding: { y: { field: "zero", type: "quantitative" } },
    });
  }
  const spec: TopLevelSpec = {
    $schema: "https://vega.github.io/schema/vega-lite/v6.json",
    title: opts.title,
    width: numericX ? 560 : Math.max(480, Math.min(900, xs.length * 40)),
    height: 300,
    data: { values: rows },
    layer: layers,
    config: CHART_CONFIG,
    usermeta: { [FIT_KEY]: { mode: "width", units: 1, minStep: 320, maxStep: 980 } satisfies ChartFit },
  };
  return { kind: "line", title: opts.title, spec, data: { x: opts.x, series: opts.series } };
}
