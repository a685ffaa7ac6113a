/** Attribution vs exact: every focus-group component measured both ways, and how well the estimate tracks. */
import { linearAgreement } from "../../analysis/correlation.ts";
import { mean as meanOf } from "../../analysis/stats.ts";
import { scatterChart } from "../../viz/charts/scatter-chart.ts";
import { groupOf, normalise } from "../context.ts";
import { f2 } from "../format.ts";
import type { FocusResult } from "../results.ts";
import type { Stage, StageSlice } from "../stage.ts";
import { patchUnit } from "./patching.ts";

type Slice = StageSlice & { focus: Pick<FocusResult, "attributionVsExact"> };

export const agreementStage: Stage<Slice> = {
  name: "attribution vs exact",
  async run(ctx, res) {
    const f = res.focus;
    if (!f.layerPatching || !f.headSplit || !f.neurons) return { focus: {} };
    if (ctx.screenMethod === "exact") {
      ctx.omitted.push("attribution vs exact: the screens were exact, there is no estimate to compare");
      return { focus: {} };
    }
    const fg = groupOf(res, ctx.focus.name);
    const screen = await ctx.layerScreenRaw(ctx.focus);
    const points: NonNullable<FocusResult["attributionVsExact"]>["points"] = [];
    for (const [i, c] of ctx.comps.entries()) {
      points.push({
        label: c.label,
        kind: "layer output",
        attribution: normalise(fg, meanOf(screen[i])),
        exact: f.layerPatching.mean[c.row === 0 ? 1 : 2][c.col], // attn_out / mlp_out rows
      });
    }
    for (const [k, h] of f.headSplit.heads.entries()) {
      for (const [pi, p] of f.headSplit.parts.entries()) {
        points.push({
          label: `${h} ${p}`,
          kind: `head ${p}`,
          attribution: f.headSplit.attribution[k][pi],
          exact: f.headSplit.exact.mean[k][pi],
        });
      }
    }
    for (const n of f.neurons.top)
      points.push({ label: n.label, kind: "neuron", attribution: n.attribution, exact: n.exact.mean });
    const a = linearAgreement(
      points.map((p) => p.exact),
      points.map((p) => p.attribution),
    );
    return { focus: { attributionVsExact: { points, r: a.correlation, slope: a.slope } } };
  },
  sections(res) {
    const av = res.focus.attributionVsExact;
    if (!av) return [];
    const F = res.focusGroup;
    const unit = patchUnit(groupOf(res, F));
    return [
      {
        heading: `Attribution patching vs exact patching (${F})`,
        figures: [
          {
            name: "focus-attribution-vs-exact",
            figure: scatterChart({
              title: `Attribution patching vs exact patching (${F})`,
              points: av.points.map((p) => ({ x: p.exact, y: p.attribution, label: p.label, group: p.kind })),
              xTitle: `exact (${unit})`,
              yTitle: `attribution estimate (${unit})`,
              identityLine: true,
            }),
            caption: `Every component measured both ways (${av.points.length} points: layer outputs, head parts, neurons). Pearson r = ${f2(av.r)}, slope of the estimate on the exact value ${f2(av.slope)}; points off the diagonal are where the first-order estimate fails.`,
          },
        ],
      },
    ];
  },
};
