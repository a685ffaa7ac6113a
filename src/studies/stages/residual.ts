/** Residual attribution: the logit difference read from the accumulated residual stream, and written by each component. */
import { formatMeanSe } from "../../analysis/stats.ts";
import { barChart } from "../../viz/charts/bar-chart.ts";
import { lineChart } from "../../viz/charts/line-chart.ts";
import { RESID_AXIS } from "../../viz/presets/attribution-figures.ts";
import { f2, signed } from "../format.ts";
import type { GroupResult } from "../results.ts";
import type { NamedFigure, Stage, StageSlice } from "../stage.ts";
import { summarizeSeries } from "../summaries.ts";

type Slice = StageSlice & { groups: Map<string, Pick<GroupResult, "accumulated" | "decomposed">> };

export const residualStage: Stage<Slice> = {
  name: "residual attribution",
  run(ctx, res) {
    const groups: Slice["groups"] = new Map();
    for (const g of ctx.analysed(res)) {
      const attr = ctx.cleanAttribution(g);
      groups.set(g.name, {
        accumulated: summarizeSeries(attr.accumulatedLabels, attr.accumulated, ctx.boot(100 * g.index + 3)),
        decomposed: summarizeSeries(attr.decomposedLabels, attr.decomposed, ctx.boot(100 * g.index + 6)),
      });
    }
    return { groups };
  },
  sections(res) {
    const F = res.focusGroup;
    const figures: NamedFigure[] = [];
    const acc = res.focus.accumulated;
    const dec = res.focus.decomposed;
    if (acc && dec) {
      const last = acc.mean.length - 1;
      const steps = acc.mean.slice(1).map((v, i) => v - acc.mean[i]);
      // The largest change either way: a fall can be the story as much as a rise.
      const j = steps.reduce((b, v, i) => (Math.abs(v) > Math.abs(steps[b]) ? i : b), 0);
      figures.push({
        name: "focus-accumulated-residual",
        figure: lineChart({
          title: `Logit difference read from the residual stream (${F})`,
          x: acc.labels,
          series: [{ name: F, values: acc.mean, lower: acc.ciLow, upper: acc.ciHigh }],
          xTitle: RESID_AXIS,
          yTitle: "logit diff",
        }),
        caption: `Accumulated residual stream before each layer (L_pre), after its attention (L_mid) and leaving the last layer (final_post), through the final normalisation (cached scale), mean over ${acc.n} prompts with 95% bootstrap intervals. Final value ${f2(acc.mean[last])} ± ${f2(acc.se[last])} (SE); the largest change is from ${acc.labels[j]} to ${acc.labels[j + 1]} (${signed(steps[j])}).`,
      });
      const top = [...dec.mean.keys()].sort((a, b) => Math.abs(dec.mean[b]) - Math.abs(dec.mean[a]));
      figures.push({
        name: "focus-decomposed-residual",
        figure: barChart({
          title: `Logit difference written by each component (${F})`,
          labels: dec.labels,
          values: dec.mean,
          errors: { lower: dec.ciLow, upper: dec.ciHigh },
          labelTitle: "component",
          valueTitle: "logit diff",
        }),
        caption: `Direct contribution of each component's output to the final logit difference, with 95% bootstrap intervals; ± is one SE. Largest: ${top
          .slice(0, 3)
          .sort((a, b) => a - b)
          .map((i) => `${dec.labels[i]} ${formatMeanSe({ mean: dec.mean[i], se: dec.se[i] })}`)
          .join(", ")}.`,
      });
    }
    const withAcc = res.groups.filter((g) => g.accumulated);
    if (withAcc.length > 1) {
      const finals = withAcc.map((g) => g.accumulated!.mean.at(-1)!);
      figures.push({
        name: "groups-accumulated-residual",
        figure: lineChart({
          title: "Logit difference from the residual stream, every group",
          x: withAcc[0].accumulated!.labels,
          series: withAcc.map((g) => ({ name: g.name, values: g.accumulated!.mean })),
          xTitle: RESID_AXIS,
          yTitle: "logit diff",
        }),
        caption: `Accumulated residual stream per analysed group (means; intervals and per-prompt values in results.json). Final values range from ${f2(Math.min(...finals))} to ${f2(Math.max(...finals))}.`,
      });
    }
    return figures.length ? [{ heading: "The residual stream", figures }] : [];
  },
};
