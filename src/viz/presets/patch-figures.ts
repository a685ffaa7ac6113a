/**
 * Figures of an activation-patching result, in one place for the CLI (`patch --html`), the explorer and
 * the study: which figure suits which result axes, the metric's one name, axis titles, and captions that
 * say what the numbers are.
 */
import type { TargetComparison } from "../../patching/attribution-compare.ts";
import { cellLabel } from "../../patching/result-format.ts";
import { HEAD_COMPONENTS } from "../../patching/targets.ts";
import type { PatchResult } from "../../patching/types.ts";
import { nest } from "../../tensor/tensor.ts";
import { formatToken } from "../../tokenizer/format-token.ts";
import { barChart } from "../charts/bar-chart.ts";
import { heatmap, heatmapPanels } from "../charts/heatmap.ts";
import { scatterChart } from "../charts/scatter-chart.ts";
import { formatValue } from "../color-scale.ts";
import type { ChartFigure } from "../figure.ts";
import type { ReportFigure, ReportInputs, ReportTable } from "../html/report.ts";
import { pairPositionLabels, tokenPositionLabels } from "../token-labels.ts";

/** The one name of the normalised patching metric, in every figure, legend and caption. */
export const FRACTION_RESTORED = "fraction restored";

/** What a patching result was computed from, for labels and the page's list of inputs. */
export interface PatchInputs {
  clean: readonly string[];
  corrupted: readonly string[];
  /** The answer and wrong tokens as typed (one each, or one per prompt). */
  answer: string | readonly string[];
  wrong: string | readonly string[];
  /** String tokens of the clean and corrupted prompt whose positions label the position axis. */
  cleanTokens?: readonly string[];
  corruptedTokens?: readonly string[];
  model?: string;
}

type Figures = (ReportFigure & { figure: ChartFigure })[];

const layerLabels = (n: number) => Array.from({ length: n }, (_, l) => `L${l}`);
/**
 * Query heads are H0.. ("head"); k/v targets of grouped-query models index key/value heads, KV0..
 * ("key/value head", result axis `kv_head`).
 */
function headAxis(r: PatchResult): { labels: (n: number) => string[]; title: string } {
  const kv = r.axes[r.axes.length - 1] === "kv_head";
  return {
    labels: (n) => Array.from({ length: n }, (_, h) => `${kv ? "KV" : "H"}${h}`),
    title: kv ? "key/value head" : "head",
  };
}

/** Rows x cols values starting at `offset` of a flat row-major array, as values[row][col]. */
const grid = (values: ArrayLike<number>, offset: number, rows: number, cols: number) =>
  nest(values, [rows, cols], offset) as number[][];

/** Position axis labels: clean and corrupted token where they differ, else the result's own labels. */
function positionLabels(r: PatchResult, posAxis: number, inputs?: PatchInputs): string[] {
  const n = r.shape[posAxis];
  if (inputs?.cleanTokens && inputs.cleanTokens.length === n)
    return pairPositionLabels(inputs.cleanTokens, inputs.corruptedTokens ?? []);
  const labels = r.labels[posAxis];
  return labels ? tokenPositionLabels(labels) : Array.from({ length: n }, (_, p) => `pos ${p}`);
}

/** head_all on a grouped-query model: the k and v cells of one key/value head's query heads are one effect. */
function sharedKvNote(r: PatchResult): string {
  const g = r.kvGroupSize;
  if (!g) return "";
  const groups = Array.from({ length: Math.min(2, r.shape[2] / g) }, (_, kv) =>
    Array.from({ length: g }, (_, i) => `H${kv * g + i}`).join("+"),
  );
  return ` In k and v, each group of ${g} query heads (${groups.join(", ")}, …) reads one key/value head, so its equal cells are one effect, not ${g}.`;
}

/** The cell with the largest |value|, named with its value, for captions. */
function largestCaption(r: PatchResult): string {
  let best = 0;
  for (let i = 1; i < r.values.length; i++) if (Math.abs(r.values[i]) > Math.abs(r.values[best])) best = i;
  return `Largest |${FRACTION_RESTORED}|: ${cellLabel(r, best)} = ${formatValue(r.values[best])}.`;
}

function methodNote(r: PatchResult): string {
  return r.method === "attribution"
    ? " These are attribution-patching ESTIMATES (a first-order approximation from gradients), not patched runs."
    : "";
}

const SCALE_NOTE = "1 = the clean logit difference restored, 0 = no change from the corrupted run.";

/** Figures for a patching result; throws for result axes it does not know how to draw. */
export function patchFigures(r: PatchResult, inputs?: PatchInputs): Figures {
  const axes = r.axes.join(",").replace(/kv_head$/, "head");
  const heads = headAxis(r);
  const headLabels = heads.labels;
  const note = `${SCALE_NOTE}${methodNote(r)} ${largestCaption(r)}`;
  const common = { rowTitle: "layer", valueTitle: FRACTION_RESTORED };
  switch (axes) {
    case "layer,pos":
      return [
        {
          figure: heatmap({
            ...common,
            title: `Patching ${r.target}: layer × position`,
            rowLabels: layerLabels(r.shape[0]),
            colLabels: positionLabels(r, 1, inputs),
            values: grid(r.values, 0, r.shape[0], r.shape[1]),
            colTitle: "position (clean / corrupted token where they differ)",
          }),
          caption: `Each cell: ${FRACTION_RESTORED} when ${r.target} at that layer and position is patched from the clean run. ${note}`,
        },
      ];
    case "layer,head":
      return [
        {
          figure: heatmap({
            ...common,
            title: `Patching ${r.target}: layer × head`,
            rowLabels: layerLabels(r.shape[0]),
            colLabels: headLabels(r.shape[1]),
            values: grid(r.values, 0, r.shape[0], r.shape[1]),
            colTitle: heads.title,
          }),
          caption: `Each cell: ${FRACTION_RESTORED} when that ${heads.title}'s ${r.target.replace(/^head_/, "")} is patched at every position. ${note}`,
        },
      ];
    case "component,layer,head": {
      const [C, L, H] = r.shape;
      const names = r.labels[0] ?? HEAD_COMPONENTS.slice(0, C);
      return [
        {
          figure: heatmapPanels({
            ...common,
            title: `Patching each head component: layer × head`,
            rowLabels: layerLabels(L),
            colLabels: headLabels(H),
            colTitle: "head",
            panels: names.map((name, c) => ({ title: name, values: grid(r.values, c * L * H, L, H) })),
          }),
          caption: `One panel per head component (${names.join(", ")}), ONE shared colour scale.${sharedKvNote(r)} ${note}`,
        },
      ];
    }
    case "layer,pos,head": {
      const [L, P, H] = r.shape;
      const pos = positionLabels(r, 1, inputs);
      const panels = pos.map((title, p) => ({
        title,
        values: Array.from({ length: L }, (_, l) =>
          Array.from({ length: H }, (_, h) => r.values[(l * P + p) * H + h]),
        ),
      }));
      return [
        {
          figure: heatmapPanels({
            ...common,
            title: `Patching ${r.target} per destination position: layer × head`,
            rowLabels: layerLabels(L),
            colLabels: headLabels(H),
            colTitle: heads.title,
            panels,
          }),
          caption: `One panel per position, ONE shared colour scale. ${note}`,
        },
      ];
    }
    case "neuron":
    case "layer,neuron":
    case "index_set":
    case "site":
      return [oneDimensionFigure(r, note)];
    default:
      throw new Error(
        `patchFigures: no figure for result axes [${r.axes.join(", ")}] (target ${r.target}); known: [layer, pos], [layer, head], [component, layer, head], [layer, pos, head], [neuron], [layer, neuron], [index_set], [site].`,
      );
  }
}

const TOP_CELLS = 40;

/** Long 1-D results (neurons): the largest |values| as bars, in index order so layers read in order. */
function oneDimensionFigure(r: PatchResult, note: string): Figures[number] {
  const n = r.values.length;
  const order = Array.from(r.values.keys()).sort((a, b) => Math.abs(r.values[b]) - Math.abs(r.values[a]));
  const shown = order.slice(0, TOP_CELLS).sort((a, b) => a - b);
  const name = (i: number) =>
    r.axes.join() === "layer,neuron"
      ? `L${Math.floor(i / r.shape[1])} N${i % r.shape[1]}`
      : r.axes[0] === "neuron"
        ? `N${i}`
        : (r.labels[0]?.[i] ?? `${r.axes[0]} ${i}`);
  const partial = shown.length < n;
  return {
    figure: barChart({
      title: partial
        ? `Patching ${r.target}: the ${shown.length} largest of ${n} by |${FRACTION_RESTORED}|`
        : `Patching ${r.target}`,
      labels: shown.map(name),
      values: shown.map((i) => r.values[i]),
      labelTitle: r.axes.join(" / "),
      valueTitle: FRACTION_RESTORED,
      horizontal: shown.length > 12,
    }),
    caption: `${partial ? `Only the ${shown.length} largest |values| of ${n} are drawn, in index order. ` : ""}${note}`,
  };
}

const tokenText = (t: string | readonly string[]) =>
  typeof t === "string" ? formatToken(t) : t.map(formatToken).join(", ");

/** The page's list of inputs: prompts, tokens, metric and n. */
export function patchInputsList(r: PatchResult, inputs: PatchInputs): ReportInputs {
  const n = inputs.clean.length;
  return [
    ...(inputs.model ? [{ label: "model", value: inputs.model }] : []),
    { label: "clean prompts", value: [...inputs.clean] },
    { label: "corrupted prompts", value: [...inputs.corrupted] },
    { label: "answer token", value: tokenText(inputs.answer) },
    { label: "wrong token", value: tokenText(inputs.wrong) },
    {
      label: "metric",
      value: `${FRACTION_RESTORED} = (patched − corrupted) / (clean − corrupted) of the batch-mean logit difference logit(answer) − logit(wrong) at each prompt's final position`,
    },
    {
      label: "clean / corrupted",
      value: `${formatValue(r.clean)} / ${formatValue(r.corrupted)} (batch-mean logit difference)`,
    },
    { label: "n", value: `${n} prompt pair${n === 1 ? "" : "s"}; method ${r.method}` },
  ];
}

/** Attribution estimate against exact patching: a scatter per target and a table of the worst cells. */
export function comparisonFigures(cmps: readonly TargetComparison[]): {
  figures: Figures;
  tables: ReportTable[];
} {
  const figures: Figures = cmps.map((c) => ({
    figure: scatterChart({
      title: `${c.target}: attribution estimate vs exact patching`,
      points: Array.from(c.exact.values, (exact, i) => ({
        x: exact,
        y: c.estimate.values[i],
        label: cellLabel(c.exact, i),
      })),
      xTitle: `exact ${FRACTION_RESTORED}`,
      yTitle: `estimated ${FRACTION_RESTORED}`,
      identityLine: true,
    }),
    // One sentence; the agreement's numbers are in the table below it (issue 28 point 10).
    caption: `One point per patched location, the dashed line where the estimate equals the exact value (correlation, slope and intercept in the table below).`,
  }));
  const agreement: ReportTable = {
    caption: `How well the attribution estimate agrees with exact patching (${FRACTION_RESTORED}), per target`,
    columns: ["target", "locations", "correlation", "least-squares slope", "intercept"],
    rows: cmps.map((c) => [
      c.target,
      String(c.n),
      c.correlation.toFixed(3),
      c.slope.toFixed(3),
      c.intercept.toFixed(3),
    ]),
  };
  const worst: ReportTable[] = cmps.map((c) => ({
    caption: `${c.target}: the largest disagreements (|estimate − exact|, ${FRACTION_RESTORED})`,
    columns: ["location", "estimate", "exact", "estimate − exact"],
    rows: c.worst.map((w) => [
      w.label,
      formatValue(w.estimate),
      formatValue(w.exact),
      formatValue(w.estimate - w.exact),
    ]),
  }));
  return { figures, tables: [agreement, ...worst] };
}
