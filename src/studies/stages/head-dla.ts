/**
 * Head DLA: each head's direct contribution to the logit difference on the clean and the corrupted run, per
 * group. Heads are ranked by the clean - corrupted difference: a head that pushes the same way on both runs
 * (a constant bias) does not carry the cue, however large its clean DLA.
 */
import { formatMeanSe } from "../../analysis/stats.ts";
import { barChart } from "../../viz/charts/bar-chart.ts";
import { heatmap, heatmapPanels } from "../../viz/charts/heatmap.ts";
import { f2, modelPreCapNote } from "../format.ts";
import type { GroupResult } from "../results.ts";
import type { NamedFigure, Stage, StageSlice } from "../stage.ts";
import { type GridSummary, type RankedCell, summarizeGrid, topCells } from "../summaries.ts";

type Slice = StageSlice & {
  groups: Map<string, Pick<GroupResult, "headDla" | "headDlaCorrupted" | "headDlaDiff" | "topHeads">>;
};

import { headName } from "../../model/component-names.ts";

/** "L4H2 1.10 ± 0.03 (clean 1.72, corrupted 0.62)": the ranked difference with both runs beside it. */
export function headDlaText(c: RankedCell, g: Pick<GroupResult, "headDla" | "headDlaCorrupted">): string {
  const clean = g.headDla!.mean[c.row][c.col];
  const corrupted = g.headDlaCorrupted!.mean[c.row][c.col];
  return `${c.label} ${formatMeanSe(c)} (clean ${f2(clean)}, corrupted ${f2(corrupted)})`;
}

export const headDlaStage: Stage<Slice> = {
  name: "head DLA",
  run(ctx, res) {
    const { nLayers: L, nHeads: H } = ctx.model.cfg;
    const rows = Array.from({ length: L }, (_, l) => `L${l}`);
    const cols = Array.from({ length: H }, (_, h) => `H${h}`);
    const groups: Slice["groups"] = new Map();
    for (const g of ctx.analysed(res)) {
      const clean = ctx.cleanAttribution(g).heads;
      const corrupted = ctx.corruptedAttribution(g).heads;
      const grid = (perPrompt: number[][][], offset: number): GridSummary =>
        summarizeGrid(rows, cols, perPrompt, ctx.boot(100 * g.index + offset));
      const headDlaDiff = grid(
        clean.map((p, b) => p.map((row, l) => row.map((v, h) => v - corrupted[b][l][h]))),
        7,
      );
      groups.set(g.name, {
        headDla: grid(clean, 4),
        headDlaCorrupted: grid(corrupted, 5),
        headDlaDiff,
        topHeads: topCells(headDlaDiff, ctx.plan.topHeads, headName),
      });
    }
    return { groups };
  },
  sections(res) {
    const F = res.focusGroup;
    const figures: NamedFigure[] = [];
    const { headDla, headDlaCorrupted, headDlaDiff, topHeads: th } = res.focus;
    const preCap = modelPreCapNote(res);
    if (headDla && headDlaCorrupted && headDlaDiff && th) {
      figures.push({
        name: "focus-head-dla",
        figure: heatmapPanels({
          title: `Direct logit attribution per head (${F})`,
          rowLabels: headDla.rowLabels,
          colLabels: headDla.colLabels,
          panels: [
            { title: "clean", values: headDla.mean },
            { title: "corrupted", values: headDlaCorrupted.mean },
            { title: "clean − corrupted", values: headDlaDiff.mean },
          ],
          rowTitle: "layer",
          colTitle: "head",
          valueTitle: "logit diff",
          scale: "diverging",
        }),
        caption: `Each head's output (z·W_O at the final position, through the final normalisation) projected on the answer − wrong direction, mean over ${headDla.n} prompts, on the clean run, the corrupted run and their difference (one colour scale). Heads are ranked by the difference: the largest is ${headDlaText(th[0], res.focus)}, ± one SE.${preCap}`,
      });
      figures.push({
        name: "focus-top-heads",
        figure: barChart({
          title: `Top heads by |clean − corrupted direct logit attribution| (${F})`,
          labels: th.map((c) => c.label),
          values: th.map((c) => c.mean),
          errors: { lower: th.map((c) => c.ciLow), upper: th.map((c) => c.ciHigh) },
          labelTitle: "head",
          valueTitle: "clean − corrupted DLA (logit diff)",
        }),
        caption: `Top ${th.length} heads by the clean − corrupted difference of their DLA, 95% bootstrap intervals; ± one SE, with each run's mean: ${th.map((c) => headDlaText(c, res.focus)).join(", ")}.${preCap}`,
      });
    }
    const withHeads = res.groups.filter((g) => g.topHeads && g.headDlaDiff);
    if (withHeads.length > 1) {
      const union = [...new Set(withHeads.flatMap((g) => g.topHeads!.map((c) => c.label)))].sort(
        (a, b) => cellOf(a)[0] - cellOf(b)[0] || cellOf(a)[1] - cellOf(b)[1],
      );
      figures.push({
        name: "groups-top-heads",
        figure: heatmap({
          title: "Clean − corrupted direct logit attribution of each group's top heads",
          rowLabels: withHeads.map((g) => g.name),
          colLabels: union,
          values: withHeads.map((g) => union.map((u) => g.headDlaDiff!.mean[cellOf(u)[0]][cellOf(u)[1]])),
          rowTitle: "group",
          colTitle: "head",
          valueTitle: "clean − corrupted DLA (logit diff)",
          scale: "diverging",
        }),
        caption: `The union of every analysed group's top heads (in layer order), clean − corrupted DLA per group. Top head per group: ${withHeads.map((g) => `${g.name} ${headDlaText(g.topHeads![0], g)}`).join("; ")}.${preCap}`,
      });
    }
    return figures.length ? [{ heading: "Heads: direct logit attribution", figures }] : [];
  },
  findings(res) {
    const th = res.focus.topHeads ?? [];
    const clear = th.filter((c) => c.ciLow > 0 || c.ciHigh < 0);
    if (!th.length) return [];
    return [
      {
        text: clear.length
          ? `In ${res.focusGroup}, the heads whose direct logit attribution the cue changes most (clean − corrupted DLA, interval excluding 0) are ${clear.map((c) => headDlaText(c, res.focus)).join(", ")} (logits, ± one SE).`
          : `In ${res.focusGroup}, no top head's clean − corrupted direct logit attribution has an interval excluding 0.`,
        evidence: Object.fromEntries(
          th.map((c) => [`focus.topHeads[${c.label}] (headDlaDiff)`, `${c.mean} [${c.ciLow}, ${c.ciHigh}]`]),
        ),
      },
    ];
  },
};

/** "L3H2" → [3, 2]. */
export function cellOf(label: string): [number, number] {
  const m = /L(\d+)H(\d+)/.exec(label);
  if (!m) throw new Error(`not a head label: ${label}`);
  return [Number(m[1]), Number(m[2])];
}
