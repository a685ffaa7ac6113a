import type { TopLevelSpec } from "vega-lite";
import type { ChartFigure } from "../figure.ts";
import { distinctLabels } from "../token-labels.ts";
import { bandAxisLabels, requireNonEmpty, VALUE_FORMAT } from "./chart-input.ts";

export interface HeatmapOptions {
  title: string;
  /** e.g. layers ("L0".."L11"). */
  rowLabels: string[];
  /** e.g. heads ("H0"..), or token positions from `tokenPositionLabels(tokens)`. Repeats are made distinct. */
  colLabels: string[];
  /** values[row][col]; null marks a cell that was not computed (drawn empty). */
  values: (number | null)[][];
  rowTitle?: string;
  colTitle?: string;
  /** Legend and tooltip name of the value, e.g. "logit diff recovered". */
  valueTitle?: string;
  /** "diverging" (default): red < 0 < blue, symmetric around 0. "sequential": for non-negative values. */
  scale?: "diverging" | "sequential";
}

/** rows x cols grid of values, e.g. layer x head attribution or layer x position activation patching. */
export function heatmap(opts: HeatmapOptions): ChartFigure {
  requireNonEmpty("rowLabels", opts.rowLabels.length);
  requireNonEmpty("colLabels", opts.colLabels.length);
  if (opts.values.length !== opts.rowLabels.length) {
    throw new Error(
      `heatmap values has ${opts.values.length} rows but rowLabels has ${opts.rowLabels.length}: pass values[row][col] with one row per label.`,
    );
  }
  const rowLabels = distinctLabels(opts.rowLabels);
  const colLabels = distinctLabels(opts.colLabels);
  const rows: { row: string; col: string; value: number }[] = [];
  let maxAbs = 0;
  let min = 0;
  opts.values.forEach((r, i) => {
    if (r.length !== colLabels.length) {
      throw new Error(
        `heatmap values[${i}] has ${r.length} columns but colLabels has ${colLabels.length}: pass one value per column label.`,
      );
    }
    r.forEach((v, j) => {
      if (v === null) return;
      if (!Number.isFinite(v)) {
        throw new Error(`heatmap values[${i}][${j}] is ${v}: use null for a cell that has no value.`);
      }
      maxAbs = Math.max(maxAbs, Math.abs(v));
      min = Math.min(min, v);
      rows.push({ row: rowLabels[i], col: colLabels[j], value: v });
    });
  });
  const m = maxAbs || 1;
  // A symmetric domain with its middle at 0 keeps white = "no effect", whatever the data's range.
  const diverging = (opts.scale ?? "diverging") === "diverging";

  const cell = Math.max(12, Math.min(36, Math.floor(760 / colLabels.length)));
  const rowCell = Math.max(12, Math.min(28, Math.floor(520 / rowLabels.length)));
  const valueTitle = opts.valueTitle ?? "value";
  const spec: TopLevelSpec = {
    $schema: "https://vega.github.io/schema/vega-lite/v6.json",
    title: opts.title,
    width: { step: cell },
    height: { step: rowCell },
    data: { values: rows },
    mark: { type: "rect" },
    encoding: {
      x: {
        field: "col",
        type: "ordinal",
        sort: colLabels,
        scale: { domain: colLabels },
        title: opts.colTitle ?? null,
        axis: { ...bandAxisLabels(colLabels), orient: "bottom" },
      },
      y: {
        field: "row",
        type: "ordinal",
        sort: rowLabels,
        scale: { domain: rowLabels },
        title: opts.rowTitle ?? null,
        axis: { labelLimit: 180 },
      },
      color: {
        field: "value",
        type: "quantitative",
        scale: diverging
          ? { scheme: "redblue", domain: [-m, m], domainMid: 0 }
          : { scheme: "blues", domain: [Math.min(0, min), m] },
        title: valueTitle,
        legend: { gradientLength: Math.max(120, Math.min(300, rowCell * rowLabels.length)) },
      },
      tooltip: [
        { field: "row", type: "ordinal", title: opts.rowTitle ?? "row" },
        { field: "col", type: "ordinal", title: opts.colTitle ?? "column" },
        { field: "value", type: "quantitative", title: valueTitle, format: VALUE_FORMAT },
      ],
    },
    config: { axis: { grid: false, domain: false, ticks: false }, view: { stroke: "#ddd" } },
  };
  return {
    kind: "heatmap",
    title: opts.title,
    spec,
    data: { rowLabels: opts.rowLabels, colLabels: opts.colLabels, values: opts.values },
  };
}
