/**
 * Group comparisons: each analysed group against the focus group on a few per-prompt metrics, bootstrap
 * tests Holm-adjusted over the whole family. One figure per quantity, so every axis has one unit.
 */
import { barChart } from "../../viz/charts/bar-chart.ts";
import { compareWithFocus, type GroupSharing, type MetricSamples } from "../compare.ts";
import { groupOf, type StudyContext } from "../context.ts";
import { modelPreCapNote, pFmt, signed } from "../format.ts";
import { sharedUnits } from "../prompts.ts";
import type { Comparison, Finding, GroupResult, StudyResults } from "../results.ts";
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
      swapSymmetric: true,
    },
  ];
  for (const head of (res.focus.topHeads ?? []).slice(0, 3)) {
    out.push({
      metric: `DLA of ${head.label} (clean - corrupted)`,
      byGroup: byGroup((g) => groupOf(res, g).headDlaDiff!.perPrompt.map((p) => p[head.row][head.col])),
      swapSymmetric: true,
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
    const { items, mirrored } =
      ms[0].byGroup.size > 1
        ? compareWithFocus(ms, ctx.focus.name, {
            alpha: ALPHA,
            resamples: ctx.plan.resamples,
            seed: ctx.plan.seed,
            sharing: groupSharing(ctx, res),
          })
        : { items: [], mirrored: [] };
    return {
      comparisons: {
        alpha: ALPHA,
        family:
          "each analysed group vs the focus group, every metric, except a mirror group's swap-symmetric metrics (its original's by construction); prompts two groups share resampled as pairs; Holm-adjusted",
        items,
        mirrored,
        left,
      },
    };
  },
  sections(res) {
    const cmp = res.comparisons.items;
    if (!cmp.length) return [];
    const F = res.focusGroup;
    const a = res.comparisons.alpha;
    const mirrored = res.comparisons.mirrored ?? [];
    // One figure per metric: one quantity and one unit per axis, labels short enough to read; the numbers in a table.
    const metrics = [...new Set(cmp.map((c) => c.metric))];
    const figures: NamedFigure[] = metrics.map((metric, mi) => {
      const items = cmp.filter((c) => c.metric === metric);
      const unit = unitOf(metric);
      return {
        name: `groups-comparisons-${mi + 1}`,
        figure: barChart({
          title: `${metric}: group − ${F}`,
          labels: items.map((c) => `${c.significant ? "✱ " : ""}${c.group}`),
          values: items.map((c) => c.diff),
          errors: { lower: items.map((c) => c.ciLow), upper: items.map((c) => c.ciHigh) },
          horizontal: true,
          points: true,
          labelTitle: "group (✱ = Holm-adjusted p < α)",
          valueTitle: `difference of means, ${unit}`,
        }),
        caption: `${metric}, each group minus ${F} (${unit}): points are differences of means, bars 95% bootstrap intervals, ✱ a Holm-adjusted p below α = ${a} over all ${cmp.length} tests; the numbers are in the table below.${metric.startsWith("DLA") ? modelPreCapNote(res) : ""}`,
      };
    });
    const rows = [
      ...cmp.map((c) => [
        c.metric,
        c.group,
        signed(c.diff),
        `[${signed(c.ciLow)}, ${signed(c.ciHigh)}]`,
        pFmt(c.pHolm),
        c.significant ? "yes" : "no",
        c.paired ? `${c.paired} paired` : "independent",
      ]),
      ...mirrored.map((m) => [
        m.metric,
        m.group,
        signed(m.diff),
        "",
        "not tested",
        "",
        `mirror of ${m.mirrorOf}: equal to its value by construction`,
      ]),
    ];
    return [
      {
        heading: "Differences between groups",
        text: [
          mirrorText(res),
          res.comparisons.left?.length ? `Left out: ${res.comparisons.left.join("; ")}.` : "",
        ]
          .filter(Boolean)
          .join("\n\n"),
        figures,
        tables: [
          {
            caption: `Each group minus ${F}: difference of means, 95% bootstrap interval, Holm-adjusted p over the ${cmp.length} tests, and how the two groups' prompts were resampled.`,
            columns: [
              "metric",
              "group",
              "difference",
              "95% interval",
              "adjusted p",
              `p < ${a}`,
              "resampling",
            ],
            rows,
          },
        ],
      },
    ];
  },
  findings: comparisonFindings,
};

/** Shared prompts between groups, and which groups are whole mirrors (every prompt its original's, swapped). */
function groupSharing(ctx: StudyContext, res: StudyResults): GroupSharing {
  const pairsOf = (name: string) => ctx.groups.find((g) => g.name === name)!.pairs;
  return {
    shared: (group, other) => sharedUnits(pairsOf(group), pairsOf(other)),
    mirrorOf: (group) => wholeMirrorOf(groupOf(res, group), res),
  };
}

/** The group a mirror group fully mirrors: every prompt of each is the other's with the roles swapped. */
export function wholeMirrorOf(g: GroupResult, res: StudyResults): string | undefined {
  const m = g.mirrorOf;
  if (!m) return undefined;
  const original = res.groups.find((x) => x.name === m.group);
  return original && m.shared === g.n && m.shared === original.n ? m.group : undefined;
}

/** Which groups are mirrors, and what that means for the comparisons. */
function mirrorText(res: StudyResults): string {
  const mirrors = res.groups.filter((g) => g.mirrorOf);
  if (!mirrors.length) return "";
  return `Mirror groups use another group's texts with clean and corrupted swapped: ${mirrors
    .map((g) => `${g.name} shares ${g.mirrorOf!.shared} of its ${g.n} prompts with ${g.mirrorOf!.group}`)
    .join(
      "; ",
    )}. A comparison involving a shared prompt resamples it as a pair. For a group that mirrors every prompt of its original, a metric unchanged by the swap (the ${res.words.effect}, clean − corrupted DLA) equals the original's by construction: it is reported once, not tested, not counted as a finding and not part of the Holm family.`;
}

function comparisonFindings(res: StudyResults): Finding[] {
  const cmp = res.comparisons.items;
  if (!cmp.length) return [];
  const a = res.comparisons.alpha;
  const mirrored = res.comparisons.mirrored ?? [];
  const metricsInOrder = [...new Set(cmp.map((c) => c.metric))];
  const mark = (c: Comparison) =>
    `${c.group} ${signed(c.diff)} [${signed(c.ciLow)}, ${signed(c.ciHigh)}] (adjusted p ${pFmt(c.pHolm)}${c.paired ? `; ${c.paired} prompts paired` : ""})`;
  return metricsInOrder.map((metric) => {
    const items = cmp.filter((c) => c.metric === metric);
    const sig = items.filter((c) => c.significant);
    const not = items.filter((c) => !c.significant);
    const mir = mirrored.filter((m) => m.metric === metric);
    return {
      text: `${metric}, each group minus ${res.focusGroup} (95% bootstrap interval; Holm-adjusted over all ${cmp.length} tests, α = ${a}): ${sig.length} of the ${items.length} groups tested differ${sig.length ? ` — ${sig.map(mark).join("; ")}` : ""}.${not.length ? ` No difference shown for ${not.map((c) => c.group).join(", ")}.` : ""}${mir.length ? ` Not tested, equal by construction to the group they mirror: ${mir.map((m) => `${m.group} (= ${m.mirrorOf})`).join(", ")}.` : ""}`,
      evidence: {
        ...Object.fromEntries(items.map((c) => [`comparisons[${c.metric} | ${c.group}].pHolm`, c.pHolm])),
        ...(mir.length ? { mirrored: mir.map((m) => m.group).join(", ") } : {}),
      },
    };
  });
}
