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
  seriesStyle,
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
  /** "log" for a numeric x spanning orders of magnitude (e.g. circuit sizes 1..2,461). */
  xScale?: "linear" | "log";
  /** Vertical rules at numeric x values, each labelled (e.g. "chosen circuit"). */
  rules?: { x: number; label: string }[];
  /** Points to mark with a ring and a label (e.g. where a curve stops being monotone). */
  marks?: { x: number; y: number; label: string }[];
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
  if ((opts.xScale === "log" || opts.rules?.length || opts.marks?.length) && !numericX)
    throw new Error("xScale 'log', rules and marks need numeric x values: pass x as numbers.");
  if (opts.xScale === "log" && (opts.x as number[]).some((v) => v <= 0))
    throw new Error("a log x axis needs every x above 0: drop the x <= 0 points or use a linear axis.");
  const xEnc = numericX
    ? {
        field: "x",
        type: "quantitative" as const,
        title: opts.xTitle ?? null,
        ...(opts.xScale === "log" ? { scale: { type: "log" as const } } : {}),
      }
    : {
        field: "x",
        type: "ordinal" as const,
        scale: { domain: xs as string[] },
        title: opts.xTitle ?? null,
        axis: bandAxisLabels(xs as string[]),
      };
  // Series are ordered by their scales' domains, never by sort arrays, which Vega's runtime rejects when
  // they hold "constructor", "toString" or "hasOwnProperty" (user-named groups).
  // One colour per series, fixed here so the band (fill) and the line (stroke) agree without sharing a
  // legend: the legend is the line's, so its swatch is the line colour, not the pale band.
  const styles = names.map((_, i) => seriesStyle(i));
  const scale = { domain: names, range: styles.map((st) => st.colour) };
  // Dashes share the colour legend (same field and domain), so the legend shows each series' colour and dash.
  const strokeDash = {
    field: "series",
    type: "nominal" as const,
    scale: { domain: names, range: styles.map((st) => st.dash) },
    legend: { title: null, symbolLimit: 0 },
  };
  // symbolLimit 0: list every series (one per experimental group can exceed Vega's default of 50 symbols).
  const color = {
    field: "series",
    type: "nominal" as const,
    scale,
    legend: { title: null, symbolLimit: 0, symbolType: "stroke", symbolStrokeWidth: 3 },
  };
  // The band's own field name keeps Vega-Lite from merging its (hidden) legend into the line's.
  const bandFill = { field: "band", type: "nominal" as const, scale, legend: null };
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
      ...(names.length > SERIES_COLOURS.length ? { strokeDash } : {}),
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
  for (const r of opts.rules ?? []) {
    layers.push({
      data: { values: [{ x: r.x, label: r.label }] },
      layer: [
        { mark: { type: "rule", color: "#444", strokeDash: [2, 2] }, encoding: { x: xEnc } },
        {
          mark: { type: "text", align: "left", baseline: "top", dx: 4, dy: 4, fontSize: 11, color: "#444" },
          encoding: { x: xEnc, y: { value: 0 }, text: { field: "label" } },
        },
      ],
    });
  }
  if (opts.marks?.length) {
    layers.push({
      data: { values: opts.marks.map((m) => ({ x: m.x, value: m.y, label: m.label })) },
      layer: [
        {
          mark: {
            type: "point",
            shape: "circle",
            size: 220,
            filled: false,
            strokeWidth: 2,
            color: "#b2182b",
          },
          encoding: { x: xEnc, y: { field: "value", type: "quantitative" } },
        },
        {
          mark: { type: "text", align: "left", dx: 10, dy: -10, fontSize: 11, color: "#b2182b" },
          encoding: { x: xEnc, y: { field: "value", type: "quantitative" }, text: { field: "label" } },
        },
      ],
    });
  }
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
