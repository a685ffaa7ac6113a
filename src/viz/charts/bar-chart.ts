import type { TopLevelSpec } from "vega-lite";
import type { ChartFigure } from "../figure.ts";
import { distinctLabels } from "../token-labels.ts";
import {
  bandAxisLabels,
  CHART_CONFIG,
  requireFinite,
  requireLength,
  requireNonEmpty,
  VALUE_FORMAT,
} from "./chart-input.ts";
import { type ChartFit, FIT_KEY } from "./fit.ts";

export interface BarChartOptions {
  title: string;
  labels: string[];
  values: number[];
  /** Error bars: a symmetric half-width per bar, or explicit lower/upper ends. */
  errors?: number[] | { lower: number[]; upper: number[] };
  /** Horizontal bars read better for many or long labels (default: vertical). */
  horizontal?: boolean;
  labelTitle?: string;
  valueTitle?: string;
  /** What the error bars are, e.g. "±1 SE over prompts"; shown in the tooltip (say it in the caption too). */
  errorLabel?: string;
  /** Draw each value as a point (with its error bar) instead of a bar: for means of unordered categories. */
  points?: boolean;
}

/** Labelled values, e.g. the top heads by attribution; bars are blue above 0 and red below, like the heatmaps. */
export function barChart(opts: BarChartOptions): ChartFigure {
  requireNonEmpty("labels", opts.labels.length);
  requireLength("values", opts.values, opts.labels.length, "labels");
  requireFinite("values", opts.values);
  const labels = distinctLabels(opts.labels);
  let lower: number[] | undefined;
  let upper: number[] | undefined;
  if (Array.isArray(opts.errors)) {
    requireLength("errors", opts.errors, labels.length, "labels");
    requireFinite("errors", opts.errors);
    const e = opts.errors;
    lower = opts.values.map((v, i) => v - Math.abs(e[i]));
    upper = opts.values.map((v, i) => v + Math.abs(e[i]));
  } else if (opts.errors) {
    requireLength("errors.lower", opts.errors.lower, labels.length, "labels");
    requireLength("errors.upper", opts.errors.upper, labels.length, "labels");
    requireFinite("errors.lower", opts.errors.lower);
    requireFinite("errors.upper", opts.errors.upper);
    ({ lower, upper } = opts.errors);
  }
  const rows = labels.map((label, i) => ({
    label,
    value: opts.values[i],
    ...(lower && upper ? { lower: lower[i], upper: upper[i] } : {}),
  }));
  const [bandCh, val] = opts.horizontal ? (["y", "x"] as const) : (["x", "y"] as const);
  const labelEnc = {
    field: "label",
    type: "nominal" as const,
    // Order by the scale's domain, not a sort array: Vega's runtime rejects a sort array holding
    // "constructor", "toString" or "hasOwnProperty" (user-named groups), a domain it takes as it is.
    scale: { domain: labels },
    title: opts.labelTitle ?? null,
    axis: opts.horizontal ? { labelLimit: 220 } : bandAxisLabels(labels),
  };
  const valueEnc = { field: "value", type: "quantitative" as const, title: opts.valueTitle ?? null };
  const layers: NonNullable<Extract<TopLevelSpec, { layer: unknown }>["layer"]> = [
    {
      mark: opts.points ? { type: "point", filled: true, size: 60 } : { type: "bar" },
      encoding: {
        [bandCh]: labelEnc,
        [val]: valueEnc,
        color: {
          condition: { test: "datum.value < 0", value: "#b2182b" },
          value: "#2166ac",
        },
        tooltip: [
          { field: "label", type: "nominal", title: opts.labelTitle ?? "label" },
          { field: "value", type: "quantitative", title: opts.valueTitle ?? "value", format: VALUE_FORMAT },
          ...(lower
            ? [
                {
                  field: "lower",
                  type: "quantitative" as const,
                  title: `lower (${opts.errorLabel ?? "error bar"})`,
                  format: VALUE_FORMAT,
                },
                {
                  field: "upper",
                  type: "quantitative" as const,
                  title: `upper (${opts.errorLabel ?? "error bar"})`,
                  format: VALUE_FORMAT,
                },
              ]
            : []),
        ],
      },
    },
  ];
  if (lower) {
    layers.push({
      mark: { type: "rule", color: "#222" },
      encoding: {
        [bandCh]: labelEnc,
        [val]: { field: "lower", type: "quantitative" },
        [`${val}2`]: { field: "upper" },
      },
    });
  }
  const band = Math.max(14, Math.min(40, Math.floor(760 / labels.length)));
  // Horizontal: the value axis takes the container's width; vertical: the bars share it.
  const fit: ChartFit = opts.horizontal
    ? { mode: "width", units: 1, minStep: 280, maxStep: 900 }
    : { mode: "step", units: labels.length, minStep: 12, maxStep: 60 };
  const spec: TopLevelSpec = {
    $schema: "https://vega.github.io/schema/vega-lite/v6.json",
    title: opts.title,
    width: opts.horizontal ? 480 : { step: band },
    height: opts.horizontal ? { step: 22 } : 300,
    data: { values: rows },
    layer: layers,
    config: CHART_CONFIG,
    usermeta: { [FIT_KEY]: fit },
  };
  return {
    kind: "bar",
    title: opts.title,
    spec,
    data: { labels: opts.labels, values: opts.values, lower, upper },
  };
}
