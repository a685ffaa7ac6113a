/**
 * Figures of a direct-logit-attribution result, in one place for the CLI (`attribute --html`) and the
 * explorer: accumulated residual (line), decomposed residual (bars, layer order), heads (heatmap), with
 * ±1 SE over prompts when there is a batch, and captions that name the largest change either way.
 */
import type { AttributionResult } from "../../analysis/attribute.ts";
import { type LogitAttribution, preCapNote } from "../../analysis/logit-attribution.ts";
import { mean, standardError } from "../../analysis/stats.ts";
import { formatToken } from "../../tokenizer/format-token.ts";
import { barChart } from "../charts/bar-chart.ts";
import { heatmap } from "../charts/heatmap.ts";
import { lineChart } from "../charts/line-chart.ts";
import { formatValue } from "../color-scale.ts";
import type { ChartFigure } from "../figure.ts";
import type { ReportFigure, ReportInputs } from "../html/report.ts";

/** The x axis of accumulated-residual charts: its ticks are `0_pre, 0_mid, ..., final_post`. */
export const RESID_AXIS = "residual stream before layer L (L_pre), after its attention (L_mid), final_post";

export interface AttributionInputs {
  prompts: readonly string[];
  answer: string;
  wrong: string;
  nLayers: number;
  nHeads: number;
  logitLens?: boolean;
  model?: string;
  /** The model's final-logit soft-cap, if any: the figures then say their numbers are pre-cap (preCapNote). */
  finalSoftCap?: number | null;
}

export interface AttributionFigures {
  accumulated: ReportFigure & { figure: ChartFigure };
  decomposed: ReportFigure & { figure: ChartFigure };
  heads: ReportFigure & { figure: ChartFigure };
}

/** Mean and standard error over prompts of each piece (final position). */
export function pieceStats(a: LogitAttribution): { mean: number[]; se: number[] } {
  const n = a.labels.length;
  const last = a.nPos - 1;
  const perPrompt = (i: number) =>
    Array.from({ length: a.batch }, (_, b) => a.values[(i * a.batch + b) * a.nPos + last]);
  const means: number[] = [];
  const ses: number[] = [];
  for (let i = 0; i < n; i++) {
    const xs = perPrompt(i);
    means.push(mean(xs));
    ses.push(a.batch > 1 ? standardError(xs) : 0);
  }
  return { mean: means, se: ses };
}

/** "+0.12 ± 0.03 SE" or, for one prompt, "+0.12"; adds "(±2 SE includes 0)" when it does. */
export function effectText(m: number, se: number, batch: number): string {
  const v = `${m >= 0 ? "+" : ""}${formatValue(m)}`;
  if (batch < 2) return v;
  const spans = Math.abs(m) <= 2 * se;
  return `${v} ± ${formatValue(se)} SE${spans ? " (the ±2 SE interval includes 0: no clear effect)" : ""}`;
}

/** The largest step between consecutive points, up or down (the figure's story, whichever way it goes). */
export function largestChange(labels: readonly string[], values: readonly number[]): string {
  if (values.length < 2) return "";
  let k = 1;
  for (let i = 2; i < values.length; i++)
    if (Math.abs(values[i] - values[i - 1]) > Math.abs(values[k] - values[k - 1])) k = i;
  const d = values[k] - values[k - 1];
  return `Largest change: ${d >= 0 ? "rise" : "fall"} of ${formatValue(Math.abs(d))} from ${labels[k - 1]} to ${labels[k]}.`;
}

export function attributionFigures(r: AttributionResult, inputs: AttributionInputs): AttributionFigures {
  const batch = r.logitDiff.perPrompt.length;
  const withSe = batch > 1;
  const seNote = (what: string) =>
    withSe ? ` ${what}: ±1 SE over the ${batch} prompts.` : " One prompt: no interval.";
  const what = `logit(${formatToken(inputs.answer)}) − logit(${formatToken(inputs.wrong)})`;
  const preCap = preCapNote(inputs.finalSoftCap);
  const valueTitle = `${preCap ? "pre-cap " : ""}logit difference (${formatToken(inputs.answer)} − ${formatToken(inputs.wrong)})`;

  const acc = pieceStats(r.accumulated);
  const accumulated = {
    figure: lineChart({
      title: `Logit difference read from the accumulated residual stream`,
      x: r.accumulated.labels,
      series: [
        {
          name: withSe ? `mean over ${batch} prompts` : "logit difference",
          values: acc.mean,
          ...(withSe
            ? { lower: acc.mean.map((m, i) => m - acc.se[i]), upper: acc.mean.map((m, i) => m + acc.se[i]) }
            : {}),
        },
      ],
      xTitle: RESID_AXIS,
      yTitle: valueTitle,
    }),
    caption: `${what}, read from the residual stream entering each layer (L_pre), between its attention and MLP (L_mid) and leaving the last layer (final_post) (${inputs.logitLens ? "each point with its own LayerNorm statistics: logit lens" : "scaled by the cached final LayerNorm scale"}). ${largestChange(r.accumulated.labels, acc.mean)} Final: ${effectText(acc.mean[acc.mean.length - 1], acc.se[acc.se.length - 1], batch)}.${seNote("Band")}${preCap}`,
  };

  const dec = pieceStats(r.decomposed);
  let top = 0;
  for (let i = 1; i < dec.mean.length; i++) if (Math.abs(dec.mean[i]) > Math.abs(dec.mean[top])) top = i;
  const decomposed = {
    figure: barChart({
      title: "Direct logit attribution per component (layer order)",
      labels: r.decomposed.labels,
      values: dec.mean,
      ...(withSe ? { errors: dec.se, errorLabel: "±1 SE over prompts" } : {}),
      labelTitle: "component",
      valueTitle,
    }),
    caption: `Direct contribution of each component to ${what}; the bars sum to the logit difference minus the unembedding bias. Largest |contribution|: ${r.decomposed.labels[top]} ${effectText(dec.mean[top], dec.se[top], batch)}.${seNote("Error bars")}${preCap}`,
  };

  const hs = pieceStats(r.heads);
  const { nLayers, nHeads } = inputs;
  let topHead = 0;
  for (let i = 1; i < hs.mean.length; i++) if (Math.abs(hs.mean[i]) > Math.abs(hs.mean[topHead])) topHead = i;
  const heads = {
    figure: heatmap({
      title: "Direct logit attribution per head",
      rowLabels: Array.from({ length: nLayers }, (_, l) => `L${l}`),
      colLabels: Array.from({ length: nHeads }, (_, h) => `H${h}`),
      values: Array.from({ length: nLayers }, (_, l) => hs.mean.slice(l * nHeads, (l + 1) * nHeads)),
      rowTitle: "layer",
      colTitle: "head",
      valueTitle,
    }),
    caption: `Each head's output (z @ W_O, without b_O) projected on the ${what} direction${withSe ? `, mean over ${batch} prompts` : ""}. Largest |value|: ${r.heads.labels[topHead]} ${effectText(hs.mean[topHead], hs.se[topHead], batch)}.${preCap}`,
  };
  return { accumulated, decomposed, heads };
}

/** The page's list of inputs: prompts, tokens, metric and n. */
export function attributionInputsList(r: AttributionResult, inputs: AttributionInputs): ReportInputs {
  const batch = r.logitDiff.perPrompt.length;
  return [
    ...(inputs.model ? [{ label: "model", value: inputs.model }] : []),
    {
      label: "prompts",
      value: inputs.prompts.map(
        (p, b) => `${p}   (logit difference ${formatValue(r.logitDiff.perPrompt[b])})`,
      ),
    },
    { label: "answer token", value: formatToken(inputs.answer) },
    { label: "wrong token", value: formatToken(inputs.wrong) },
    { label: "metric", value: "logit(answer) − logit(wrong) at each prompt's final position" },
    {
      label: "n",
      value: `${batch} prompt${batch === 1 ? "" : "s"}; mean logit difference ${effectText(r.logitDiff.mean, batch > 1 ? standardError(r.logitDiff.perPrompt) : 0, batch)}`,
    },
  ];
}
