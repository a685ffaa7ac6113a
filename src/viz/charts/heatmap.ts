import type { TopLevelSpec } from "vega-lite";
import type { Scale } from "vega-lite/types_unstable/scale.js";
import type { ChartFigure } from "../figure.ts";
import { distinctLabels } from "../token-labels.ts";
import {
  bandAxisLabels,
  CHART_CONFIG,
  NOT_COMPUTED,
  NOT_COMPUTED_FILL,
  requireNonEmpty,
  VALUE_FORMAT,
} from "./chart-input.ts";
import { type ChartFit, FIT_KEY } from "./fit.ts";

export interface HeatmapOptions {
  title: string;
  /** e.g. layers ("L0".."L11"). */
  rowLabels: string[];
  /** e.g. heads ("H0"..), or token positions from `tokenPositionLabels(tokens)`. Repeats are made distinct. */
  colLabels: string[];
  /** values[row][col]; null marks a cell that was not computed (drawn grey, with a "not computed" legend entry). */
  values: (number | null)[][];
  rowTitle?: string;
  colTitle?: string;
  /** Legend and tooltip name of the value, e.g. "fraction restored". */
  valueTitle?: string;
  /**
   * "diverging": red < 0 < blue, symmetric around 0 with a neutral grey middle. "sequential": for one-signed
   * values (light = 0, dark = the largest magnitude). Default: sequential when every computed value has one
   * sign, diverging otherwise.
   */
  scale?: "diverging" | "sequential";
  /** Fixed colour domain (e.g. shared with other figures); by default from the values. Values beyond it clamp. */
  domain?: [number, number];
}

export interface HeatmapPanelsOptions extends Omit<HeatmapOptions, "values"> {
  /** One grid per panel, all [row][col] over the same labels, drawn side by side with ONE colour scale. */
  panels: { title: string; values: (number | null)[][] }[];
}

type Grid = (number | null)[][];
type Cell = {
  panel?: string;
  panelOrder?: number;
  row: string;
  col: string;
  value: number | null;
  status?: string;
};

function checkGrid(values: Grid, rows: number, cols: number, what: string): void {
  if (values.length !== rows) {
    throw new Error(
      `${what} has ${values.length} rows but rowLabels has ${rows}: pass values[row][col] with one row per label.`,
    );
  }
  values.forEach((r, i) => {
    if (r.length !== cols) {
      throw new Error(
        `${what}[${i}] has ${r.length} columns but colLabels has ${cols}: pass one value per column label.`,
      );
    }
    r.forEach((v, j) => {
      if (v !== null && !Number.isFinite(v))
        throw new Error(`${what}[${i}][${j}] is ${v}: use null for a cell that has no value.`);
    });
  });
}

/** The scale data calls for: sequential when no computed value is of the other sign than the rest. */
function scaleFor(grids: readonly Grid[], asked?: HeatmapOptions["scale"]): "diverging" | "sequential" {
  if (asked) return asked;
  let neg = false;
  let pos = false;
  for (const g of grids)
    for (const r of g)
      for (const v of r) {
        if (v === null) continue;
        if (v < 0) neg = true;
        if (v > 0) pos = true;
      }
  return neg && pos ? "diverging" : "sequential";
}

/** Diverging colours: red (negative), a neutral grey middle (R = G = B, neither warm nor cool), blue. */
export const DIVERGING_RANGE = ["#b2182b", "#f0f0f0", "#2166ac"] as const;

/** Vega-Lite colour scale of a heatmap: piecewise through grey at 0, or one hue from 0 to the largest magnitude. */
function colourScale(domain: [number, number], diverging: boolean): Scale {
  if (diverging)
    return {
      domain: [domain[0], 0, domain[1]],
      range: [...DIVERGING_RANGE],
      interpolate: "lab",
      clamp: true,
    };
  // Non-positive data: the strong colour at the most negative value.
  return domain[1] <= 0
    ? { scheme: "reds", domain, reverse: true, clamp: true }
    : { scheme: "blues", domain, clamp: true };
}

/** Symmetric [-m, m] around 0 (diverging) or from 0 to the values' extreme (sequential) over every computed cell. */
function colourDomain(grids: readonly Grid[], diverging: boolean): [number, number] {
  let maxAbs = 0;
  let min = 0;
  let max = 0;
  for (const g of grids)
    for (const r of g)
      for (const v of r) {
        if (v === null) continue;
        maxAbs = Math.max(maxAbs, Math.abs(v));
        min = Math.min(min, v);
        max = Math.max(max, v);
      }
  if (diverging) return [-(maxAbs || 1), maxAbs || 1];
  if (max <= 0 && min < 0) return [min, 0];
  return [min, max > min ? max : min + 1];
}

/** One colour domain for several heatmaps of one quantity (their scale kind is the first one's). */
export function sharedHeatmapDomain(
  maps: readonly Pick<HeatmapOptions, "values" | "scale">[],
): [number, number] {
  const grids = maps.map((m) => m.values);
  return colourDomain(grids, scaleFor(grids, maps[0]?.scale) === "diverging");
}

function cellsOf(
  values: Grid,
  rowLabels: string[],
  colLabels: string[],
  panel?: { title: string; order: number },
): Cell[] {
  return values.flatMap((r, i) =>
    r.map((v, j) => ({
      ...(panel !== undefined ? { panel: panel.title, panelOrder: panel.order } : {}),
      row: rowLabels[i],
      col: colLabels[j],
      value: v,
      ...(v === null ? { status: NOT_COMPUTED } : {}),
    })),
  );
}

/** The two rect layers of a heatmap (computed cells on the colour scale, not-computed cells grey). */
function heatmapLayers({
  opts,
  rowLabels,
  colLabels,
  domain,
  withNotComputed,
  legendLength,
  thinLabels = false,
}: {
  opts: Omit<HeatmapOptions, "values">;
  rowLabels: string[];
  colLabels: string[];
  domain: [number, number];
  withNotComputed: boolean;
  legendLength: number;
  /** Panels side by side get narrow cells: thin out head-number labels (every other) instead of overlapping them. */
  thinLabels?: boolean;
}) {
  const valueTitle = opts.valueTitle ?? "value";
  const diverging = opts.scale === "diverging";
  const x = {
    field: "col",
    type: "ordinal" as const,
    scale: { domain: colLabels },
    title: opts.colTitle ?? null,
    axis: {
      ...bandAxisLabels(colLabels),
      orient: "bottom" as const,
      ...(thinLabels ? { labelOverlap: "parity" as const, labelAngle: 0 } : {}),
    },
  };
  const y = {
    field: "row",
    type: "ordinal" as const,
    scale: { domain: rowLabels },
    title: opts.rowTitle ?? null,
    axis: { labelLimit: 180 },
  };
  const where = [
    { field: "row", type: "ordinal" as const, title: opts.rowTitle ?? "row" },
    { field: "col", type: "ordinal" as const, title: opts.colTitle ?? "column" },
  ];
  const layers: NonNullable<Extract<TopLevelSpec, { layer: unknown }>["layer"]> = [
    {
      transform: [{ filter: "isValid(datum.value)" }],
      mark: { type: "rect" },
      encoding: {
        x,
        y,
        color: {
          field: "value",
          type: "quantitative",
          // A symmetric domain with its middle at 0 keeps white = "no effect", whatever the data's range.
          scale: colourScale(domain, diverging),
          title: valueTitle,
          legend: { gradientLength: legendLength },
        },
        tooltip: [
          ...where,
          { field: "value", type: "quantitative", title: valueTitle, format: VALUE_FORMAT },
        ],
      },
    },
  ];
  if (withNotComputed) {
    layers.push({
      transform: [{ filter: "!isValid(datum.value)" }],
      mark: { type: "rect", stroke: "#ffffff", strokeWidth: 0.5 },
      encoding: {
        x,
        y,
        // Its own channel, so the legend gets a separate "not computed" swatch beside the colour bar.
        fill: {
          field: "status",
          type: "nominal",
          scale: { domain: [NOT_COMPUTED], range: [NOT_COMPUTED_FILL] },
          legend: { title: null, symbolType: "square", symbolSize: 160 },
        },
        tooltip: [...where, { field: "status", type: "nominal", title: valueTitle }],
      },
    });
  }
  return layers;
}

const PANELS_PER_ROW = 5;

/** Heatmaps have no grid, axis line or ticks: the cells are the data. */
const HEATMAP_CONFIG = {
  ...CHART_CONFIG,
  axis: { ...CHART_CONFIG.axis, grid: false, domain: false, ticks: false },
  view: { stroke: "#ddd" },
};

/** Row height: the column step (square cells) unless the rows would then be taller than `budget` px. */
function squareStep(step: number, rows: number, budget: number): number {
  return Math.max(10, Math.min(step, Math.floor(budget / rows)));
}

function initialStep(units: number, budget: number): number {
  return Math.max(10, Math.min(36, Math.floor(budget / units)));
}

/** rows x cols grid of values, e.g. layer x head attribution or layer x position activation patching. */
export function heatmap(opts: HeatmapOptions): ChartFigure {
  requireNonEmpty("rowLabels", opts.rowLabels.length);
  requireNonEmpty("colLabels", opts.colLabels.length);
  checkGrid(opts.values, opts.rowLabels.length, opts.colLabels.length, "heatmap values");
  const rowLabels = distinctLabels(opts.rowLabels);
  const colLabels = distinctLabels(opts.colLabels);
  const scale = scaleFor([opts.values], opts.scale);
  const domain = opts.domain ?? colourDomain([opts.values], scale === "diverging");
  const hasNull = opts.values.some((r) => r.includes(null));
  const step = initialStep(colLabels.length, 760);
  const fit: ChartFit = { mode: "step", units: colLabels.length, minStep: 10, maxStep: 64, squareRows: true };
  const spec: TopLevelSpec = {
    $schema: "https://vega.github.io/schema/vega-lite/v6.json",
    title: opts.title,
    width: { step },
    height: { step: squareStep(step, rowLabels.length, 640) },
    data: { values: cellsOf(opts.values, rowLabels, colLabels) },
    layer: heatmapLayers({
      opts: { ...opts, scale },
      rowLabels,
      colLabels,
      domain,
      withNotComputed: hasNull,
      legendLength: Math.max(120, Math.min(300, step * rowLabels.length)),
    }),
    config: HEATMAP_CONFIG,
    usermeta: { [FIT_KEY]: fit },
  };
  return {
    kind: "heatmap",
    title: opts.title,
    spec,
    data: { rowLabels: opts.rowLabels, colLabels: opts.colLabels, values: opts.values, domain },
  };
}

/**
 * Several heatmaps of ONE quantity side by side (e.g. patching each head component), sharing one colour
 * domain and one legend, so the same colour means the same value in every panel (the notebook's faceted
 * `imshow`).
 */
export function heatmapPanels(opts: HeatmapPanelsOptions): ChartFigure {
  requireNonEmpty("panels", opts.panels.length);
  requireNonEmpty("rowLabels", opts.rowLabels.length);
  requireNonEmpty("colLabels", opts.colLabels.length);
  const titles = distinctLabels(opts.panels.map((p) => p.title));
  opts.panels.forEach((p, k) => {
    checkGrid(p.values, opts.rowLabels.length, opts.colLabels.length, `panel "${titles[k]}" values`);
  });
  const rowLabels = distinctLabels(opts.rowLabels);
  const colLabels = distinctLabels(opts.colLabels);
  const grids = opts.panels.map((p) => p.values);
  const scale = scaleFor(grids, opts.scale);
  const domain = opts.domain ?? colourDomain(grids, scale === "diverging");
  const hasNull = grids.some((g) => g.some((r) => r.includes(null)));
  const perRow = Math.min(opts.panels.length, PANELS_PER_ROW);
  const units = colLabels.length * perRow;
  const step = initialStep(units, 1000);
  const fit: ChartFit = { mode: "step", units, minStep: 6, maxStep: 40, squareRows: true };
  const spec: TopLevelSpec = {
    $schema: "https://vega.github.io/schema/vega-lite/v6.json",
    title: opts.title,
    data: {
      values: opts.panels.flatMap((p, k) =>
        cellsOf(p.values, rowLabels, colLabels, { title: titles[k], order: k }),
      ),
    },
    // Wrapped after PANELS_PER_ROW panels (e.g. one panel per position with --by-pos), so cells stay readable.
    facet: {
      field: "panel",
      type: "nominal",
      // By a field, not a sort array (Vega's runtime rejects one holding "constructor" or "toString").
      sort: { field: "panelOrder", op: "min" },
      title: null,
      header: { labelFontSize: 12, labelFontWeight: "bold", labelLimit: 0 },
    },
    columns: perRow,
    spec: {
      width: { step },
      height: { step: squareStep(step, rowLabels.length, 480) },
      layer: heatmapLayers({
        opts: { ...opts, scale },
        rowLabels,
        colLabels,
        domain,
        withNotComputed: hasNull,
        legendLength: 160,
        thinLabels: true,
      }),
    },
    // Shared scales are Vega-Lite's default for facets; stated so no later edit makes them independent.
    resolve: { scale: { color: "shared", x: "shared", y: "shared" } },
    config: HEATMAP_CONFIG,
    usermeta: { [FIT_KEY]: fit },
  };
  return {
    kind: "heatmap",
    title: opts.title,
    spec,
    data: {
      rowLabels: opts.rowLabels,
      colLabels: opts.colLabels,
      panels: opts.panels.map((p, k) => ({ title: titles[k], values: p.values })),
      domain,
    },
  };
}
