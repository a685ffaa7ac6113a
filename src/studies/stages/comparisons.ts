/**
 * Group comparisons: each analysed group against the focus group on a few per-prompt metrics, bootstrap
 * tests Holm-adjusted over the whole family. One figure per quantity, so every axis has one unit.
 */
import { barChart } from "../../viz/charts/bar-chart.ts";
import { compareWithFocus, type MetricSamples } from "../compare.ts";
import { groupOf, type StudyContext } from "../context.ts";
import { f2, pFmt } from "../format.ts";
import type { Comparison, Finding, StudyResults } from "../results.ts";
import type { NamedFigure, Stage, StageSlice } from "../stage.ts";

export const ALPHA = 0.05;

/** The unit of each metric, by its name: the figures group metrics by unit. */
function unitOf(metric: string): string {
  if (metric.includes("fraction restored")) return "fraction restored";
  if (metric.startsWith("DLA")) return "direct logit attribution (logits)";
  return "logit difference (logits)";
}

function metrics(ctx: StudyContext, res: StudyResults, left: string[]): MetricSamples[] {
  const groups = ctx.analysed(res).map((g) => g.name);
  const F = ctx.focus.name;
  const byGroup = (value: (name: string) => number[]) => new Map(groups.map((g) => [g, value(g)]));
  const out: MetricSamples[] = [
    { metric: "clean logit diff", byGroup: byGroup((g) => groupOf(res, g).cleanLogitDiff.perPrompt) },
    {
      metric: `${ctx.spec.words.effect} (clean - corrupted)`,
      byGroup: byGroup((g) => groupOf(res, g).effect.perPrompt),
    },
  ];
  for (const head of (res.focus.topHeads ?? []).slice(0, 3)) {
    out.push({
      metric: `DLA of ${head.label}`,
      byGroup: byGroup((g) =>
        ctx.cleanAttribution(ctx.groups.find((x) => x.name === g)!).heads.map((p) => p[head.row][head.col]),
      ),
    });
  }
  // Fractions restored only between groups that have a gap to restore.
  const fractionGroups = groups.filter((g) => groupOf(res, g).normalised);
  if (!groupOf(res, F).normalised) {
    left.push(`patching comparisons: the focus group ${F} has no effect to restore`);
    return out;
  }
  const skipped = groups.filter((g) => !fractionGroups.includes(g));
  if (skipped.length) left.push(`patching comparisons of ${skipped.join(", ")}: no effect to restore`);
  const focusExact = res.focus.layerExact ?? [];
  const screen = res.focus.layerScreen;
  if (!screen) return out;
  // The focus group's top screened components (the first confirmed in every group).
  for (const c of focusExact.slice(0, 2)) {
    out.push({
      metric: `${c.label} patching (fraction restored)`,
      byGroup: new Map(
        fractionGroups.map((g) => {
          const r = groupOf(res, g);
          const e = r.layerExact!.find((x) => x.label === c.label)!;
          return [g, e.exact.perPrompt.map((v) => v / r.effect.mean)];
        }),
      ),
    });
  }
  return out;
}

type Slice = StageSlice & { comparisons: StudyResults["comparisons"] };

export const comparisonsStage: Stage<Slice> = {
  name: "group comparisons",
  run(ctx, res) {
    const left: string[] = [];
    if (!ctx.analysed(res).includes(ctx.focus)) {
      left.push(
        `every comparison: the focus group ${ctx.focus.name} is not analysed (the model does not do it)`,
      );
      return { comparisons: { alpha: ALPHA, family: "none", items: [], left } };
    }
    const ms = metrics(ctx, res, left);
    const items =
      ms[0].byGroup.size > 1
        ? compareWithFocus(ms, ctx.focus.name, {
            alpha: ALPHA,
            resamples: ctx.plan.resamples,
            seed: ctx.plan.seed,
          })
        : [];
    return {
      comparisons: {
        alpha: ALPHA,
        family: "each analysed group vs the focus group, every metric; Holm-adjusted",
        items,
        left,
      },
    };
  },
  sections(res) {
    const cmp = res.comparisons.items;
    if (!cmp.length) return [];
    const F = res.focusGroup;
    const a = res.comparisons.alpha;
    // One figure per metric: one quantity and one unit per axis, labels short enough to read.
    const metrics = [...new Set(cmp.map((c) => c.metric))];
    const figures: NamedFigure[] = metrics.map((metric, mi) => {
      const items = cmp.filter((c) => c.metric === metric);
      const sig = items.filter((c) => c.significant);
      const unit = unitOf(metric);
      return {
        name: `groups-comparisons-${mi + 1}`,
        figure: barChart({
          title: `${metric}: group - ${F}`,
          labels: items.map((c) => `${c.significant ? "✱ " : ""}${c.group}`),
          values: items.map((c) => c.diff),
          errors: { lower: items.map((c) => c.ciLow), upper: items.map((c) => c.ciHigh) },
          horizontal: true,
          points: true,
          labelTitle: "group (✱ = Holm-adjusted p < α)",
          valueTitle: `difference of means, ${unit}`,
        }),
        caption: `${metric}, each group minus ${F}: points are differences of means, bars 95% bootstrap intervals of the difference (${unit}). ✱ marks the ${sig.length} of ${items.length} whose Holm-adjusted p (over all ${cmp.length} comparisons of this section) is below α = ${a}${sig.length ? `: ${sig.map(describe).join("; ")}` : ""}.`,
      };
    });
    return [
      {
        heading: "Differences between groups",
        text: res.comparisons.left?.length ? `Left out: ${res.comparisons.left.join("; ")}.` : undefined,
        figures,
      },
    ];
  },
  findings: comparisonFindings,
};

function comparisonFindings(res: StudyResults): Finding[] {
  const cmp = res.comparisons.items;
  if (!cmp.length) return [];
  const a = res.comparisons.alpha;
  const metricsInOrder = [...new Set(cmp.map((c) => c.metric))];
  const mark = (c: Comparison) =>
    `${c.group} ${c.diff >= 0 ? "+" : ""}${f2(c.diff)} [${f2(c.ciLow)}, ${f2(c.ciHigh)}]${c.significant ? ` (adjusted p ${pFmt(c.pHolm)})` : " (not significant)"}`;
  return metricsInOrder.map((metric) => {
    const items = cmp.filter((c) => c.metric === metric);
    const sig = items.filter((c) => c.significant);
    return {
      text: `${metric}, each group minus ${res.focusGroup} (95% bootstrap interval; Holm-adjusted over all ${cmp.length} comparisons, α = ${a}): ${sig.length} of ${items.length} differ — ${items.map(mark).join("; ")}.`,
      evidence: Object.fromEntries(
        items.map((c) => [`comparisons[${c.metric} | ${c.group}].pHolm`, c.pHolm]),
      ),
    };
  });
}

export const describe = (c: Comparison) =>
  `${c.group} ${c.metric} ${f2(c.diff)} [${f2(c.ciLow)}, ${f2(c.ciHigh)}], adjusted p ${pFmt(c.pHolm)}`;
