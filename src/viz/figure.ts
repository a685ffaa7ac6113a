import type { TopLevelSpec } from "vega-lite";

/** Attention patterns of one or more heads over one prompt. */
export interface AttentionData {
  tokens: string[];
  /** pattern[dest][src]: how much the token at `dest` attends to the token at `src` (rows sum to 1). */
  heads: { label: string; pattern: number[][] }[];
}

/** Text coloured by one value per token, for one or more samples. */
export interface TokenViewData {
  samples: { label?: string; tokens: string[]; values: number[] }[];
  /** "diverging": blue/red centred on 0; "sequential": white to one colour from 0 (or the minimum) to the maximum. */
  scale: "diverging" | "sequential";
  /** What the values are, shown in the legend and tooltips (e.g. "L5 N1234 activation"). */
  valueLabel: string;
  /** Optional fixed colour domain; by default the largest |value| over all samples. */
  domain?: [number, number];
}

export type ChartKind = "line" | "bar" | "heatmap" | "scatter";

/** A Vega-Lite chart: `spec` is complete (data inlined), `data` is the normalised input it was built from. */
export interface ChartFigure {
  kind: ChartKind;
  title: string;
  spec: TopLevelSpec;
  data: unknown;
}

export interface AttentionFigure {
  kind: "attention";
  title: string;
  data: AttentionData;
}

export interface TokenFigure {
  kind: "tokens";
  title: string;
  data: TokenViewData;
}

/** Plain JSON: can be written to disk, sent to a browser and mounted there by `src/viz/browser`. */
export type Figure = ChartFigure | AttentionFigure | TokenFigure;
