/** Head DLA: each head's direct contribution to the logit difference, per group; the top heads by |mean|. */
import { formatMeanSe } from "../../analysis/stats.ts";
import { barChart } from "../../viz/charts/bar-chart.ts";
import { heatmap } from "../../viz/charts/heatmap.ts";
import type { GroupResult } from "../results.ts";
import type { NamedFigure, Stage, StageSlice } from "../stage.ts";
import { summarizeGrid, topCells } from "../summaries.ts";

type Slice = StageSlice & { groups: Map<string, Pick<GroupResult, "headDla" | "topHeads">> };

export const headLabel = (layer: number, head: number) => `L${layer}H${head}`;

export const headDlaStage: Stage<Slice> = {
  name: "head DLA",
  run(ctx, res) {
    const { nLayers: L, nHeads: H } = ctx.model.cfg;
    const groups: Slice["groups"] = new Map();
    for (const g of ctx.analysed(res)) {
      const headDla = summarizeGrid(
        Array.from({ length: L }, (_, l) => `L${l}`),
        Array.from({ length: H }, (_, h) => `H${h}`),
        ctx.cleanAttribution(g).heads,
        ctx.boot(100 * g.index + 4),
      );
      groups.set(g.name, { headDla, topHeads: topCells(headDla, ctx.plan.topHeads, headLabel) });
    }
    return { groups };
  },
  sections(res) {
    const F = res.focusGroup;
    const figures: NamedFigure[] = [];
    const { headDla, topHeads: th } = res.focus;
    if (headDla && th) {
      figures.push({
        name: "focus-head-dla",
        figure: heatmap({
          title: `Direct logit attribution per head (${F})`,
          rowLabels: headDla.rowLabels,
          colLabels: headDla.colLabels,
          values: headDla.mean,
          rowTitle: "layer",
          colTitle: "head",
          valueTitle: "logit diff",
        }),
        caption: `Each head's output (z·W_O at the final position, through the final normalisation) projected on the answer - wrong direction, mean over ${headDla.n} prompts. Top head by direct logit attribution: ${th[0].label}, ${formatMeanSe(th[0])} (± one SE).`,
      });
      figures.push({
        name: "focus-top-heads",
        figure: barChart({
          title: `Top heads by |direct logit attribution| (${F})`,
          labels: th.map((c) => c.label),
          values: th.map((c) => c.mean),
          errors: { lower: th.map((c) => c.ciLow), upper: th.map((c) => c.ciHigh) },
          labelTitle: "head",
          valueTitle: "logit diff",
        }),
        caption: `Top ${th.length} heads with 95% bootstrap intervals (± one SE): ${th.map((c) => `${c.label} ${formatMeanSe(c)}`).join(", ")}.`,
      });
    }
    const withHeads = res.groups.filter((g) => g.topHeads && g.headDla);
    if (withHeads.length > 1) {
      const union = [...new Set(withHeads.flatMap((g) => g.topHeads!.map((c) => c.label)))].sort(
        (a, b) => cellOf(a)[0] - cellOf(b)[0] || cellOf(a)[1] - cellOf(b)[1],
      );
      figures.push({
        name: "groups-top-heads",
        figure: heatmap({
          title: "Direct logit attribution of each group's top heads",
          rowLabels: withHeads.map((g) => g.name),
          colLabels: union,
          values: withHeads.map((g) => union.map((u) => g.headDla!.mean[cellOf(u)[0]][cellOf(u)[1]])),
          rowTitle: "group",
          colTitle: "head",
          valueTitle: "logit diff",
        }),
        caption: `The union of every analysed group's top heads (in layer order), DLA per group. Top head per group: ${withHeads.map((g) => `${g.name} ${g.topHeads![0].label} (${formatMeanSe(g.topHeads![0])})`).join("; ")}.`,
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
          ? `In ${res.focusGroup}, the heads writing the most to the logit difference directly (DLA, interval excluding 0) are ${clear.map((c) => `${c.label} ${formatMeanSe(c)}`).join(", ")} (logits, ± one SE).`
          : `In ${res.focusGroup}, no top head's direct logit attribution has an interval excluding 0.`,
        evidence: Object.fromEntries(
          th.map((c) => [`focus.topHeads[${c.label}]`, `${c.mean} [${c.ciLow}, ${c.ciHigh}]`]),
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
