/**
 * Behaviour: the logit difference of every group's clean and corrupted prompts and their gap. Decides which
 * groups are analysed further (when the spec requires the clean behaviour) and which are normalised.
 */
import { formatMeanCi, formatMeanSe } from "../../analysis/stats.ts";
import { barChart } from "../../viz/charts/bar-chart.ts";
import { groupOf } from "../context.ts";
import { ciText, excludesZero } from "../format.ts";
import type { Finding, GroupResult } from "../results.ts";
import type { Stage, StageSlice } from "../stage.ts";
import { summarizeSample } from "../summaries.ts";

/** Below this gap (logits) "fraction restored" is not computed: it would divide by about zero. */
export const MIN_GAP = 0.2;

export const NORMALISATION_RULE = `Patching effects are per prompt (patched - corrupted logit difference). For a group whose clean - corrupted gap is clearly there (its 95% interval excludes 0 and its mean is at least ${MIN_GAP} logits) they are divided by the group's mean gap ("fraction restored": 0 = no effect, 1 = the clean behaviour restored). For any other group they are not normalised: the raw change of the logit difference is reported, the group is marked "no effect to restore", and it is kept out of every fraction-restored figure and comparison.`;

type Slice = StageSlice & { groups: Map<string, Omit<GroupResult, "name" | "n">> };

export const behaviourStage: Stage<Slice> = {
  name: "behaviour",
  run(ctx) {
    const groups: Slice["groups"] = new Map();
    for (const g of ctx.groups) {
      const gi = g.index;
      const clean = ctx.cleanAttribution(g).clean;
      const corrupted = ctx.corrupted(g);
      const effect = clean.map((c, i) => c - corrupted[i]);
      const cleanLogitDiff = summarizeSample(clean, ctx.boot(100 * gi));
      const eff = summarizeSample(effect, ctx.boot(100 * gi + 2));
      groups.set(g.name, {
        cleanLogitDiff,
        corruptedLogitDiff: summarizeSample(corrupted, ctx.boot(100 * gi + 1)),
        effect: eff,
        analysed: !ctx.spec.requireBehaviour || cleanLogitDiff.ciLow > 0,
        normalised: excludesZero(eff) && Math.abs(eff.mean) >= MIN_GAP,
      });
    }
    return { groups };
  },
  sections(res) {
    const gs = res.groups;
    const w = res.words;
    const F = res.focusGroup;
    const fg = groupOf(res, F);
    const best = [...gs].sort((a, b) => b.effect.mean - a.effect.mean)[0];
    const notDone = gs.filter((g) => !g.analysed);
    const flat = gs.filter((g) => !g.normalised);
    // Groups are categories, not a sequence: points with interval bars, one row per group and run.
    const rows = gs.flatMap((g) => [
      { label: `${g.name} · clean`, s: g.cleanLogitDiff },
      { label: `${g.name} · corrupted`, s: g.corruptedLogitDiff },
    ]);
    return [
      {
        heading: "Behaviour",
        text: notDone.length
          ? `The model does not do this in ${notDone.length} group(s) — ${notDone.map((g) => `${g.name} (clean ${formatMeanCi(g.cleanLogitDiff)})`).join("; ")}: the interval of the clean logit difference is not above 0, so these groups are not analysed further.`
          : undefined,
        figures: [
          {
            name: "behaviour-logit-diff",
            figure: barChart({
              title: "Logit difference (answer - wrong) per group, clean and corrupted",
              labels: rows.map((r) => r.label),
              values: rows.map((r) => r.s.mean),
              errors: { lower: rows.map((r) => r.s.ciLow), upper: rows.map((r) => r.s.ciHigh) },
              horizontal: true,
              points: true,
              labelTitle: w.group,
              valueTitle: "logit(answer) - logit(wrong)",
            }),
            caption: `Mean logit difference per group, ${w.clean} and ${w.corrupted}; points are means, bars 95% bootstrap intervals over prompts (± in the text is one standard error). Focus group ${F}: clean ${formatMeanSe(fg.cleanLogitDiff)}, corrupted ${formatMeanSe(fg.corruptedLogitDiff)}, ${w.effect} ${ciText(fg.effect)}. Largest ${w.effect}: ${best.name}, ${ciText(best.effect)}.${
              flat.length
                ? ` No effect to restore (gap interval includes 0 or below ${MIN_GAP}; patching shown raw, not as fractions): ${flat.map((g) => `${g.name} ${formatMeanCi(g.effect)}`).join("; ")}.`
                : ""
            }`,
          },
        ],
      },
    ];
  },
  findings(res) {
    const w = res.words;
    const gs = res.groups;
    const out: Finding[] = [];
    const byClean = [...gs].sort((a, b) => a.cleanLogitDiff.mean - b.cleanLogitDiff.mean);
    const done = byClean.filter((g) => g.analysed);
    const notDone = byClean.filter((g) => !g.analysed);
    const named = (g: GroupResult, s: GroupResult["effect"]) => `${g.name} ${formatMeanCi(s)}`;
    if (res.study.requireBehaviour) {
      out.push({
        text: `The model does this in ${done.length} of ${gs.length} groups: the 95% interval of the clean logit difference is above 0 in each${done.length ? ` (smallest ${named(done[0], done[0].cleanLogitDiff)}, largest ${named(done.at(-1)!, done.at(-1)!.cleanLogitDiff)})` : ""}.${notDone.length ? ` It does not in ${notDone.map((g) => named(g, g.cleanLogitDiff)).join("; ")}: not analysed further.` : ""}`,
        evidence: {
          ...Object.fromEntries(
            gs.map((g) => [`groups[${g.name}].cleanLogitDiff.ciLow`, g.cleanLogitDiff.ciLow]),
          ),
          rule: "analysed when cleanLogitDiff.ciLow > 0",
        },
      });
    } else {
      out.push({
        text: `Clean logit differences range from ${named(byClean[0], byClean[0].cleanLogitDiff)} to ${named(byClean.at(-1)!, byClean.at(-1)!.cleanLogitDiff)}.`,
        evidence: Object.fromEntries(
          gs.map((g) => [`groups[${g.name}].cleanLogitDiff.mean`, g.cleanLogitDiff.mean]),
        ),
      });
    }
    const analysed = gs.filter((g) => g.analysed);
    const byEffect = [...analysed].sort((a, b) => a.effect.mean - b.effect.mean);
    const flat = analysed.filter((g) => !g.normalised);
    if (byEffect.length) {
      out.push({
        text: `The ${w.effect} (clean - corrupted) ranges from ${named(byEffect[0], byEffect[0].effect)} to ${named(byEffect.at(-1)!, byEffect.at(-1)!.effect)}.${flat.length ? ` No effect to restore (interval includes 0, or below ${MIN_GAP} logits), so patching is not normalised, in: ${flat.map((g) => named(g, g.effect)).join("; ")}.` : ` Every analysed group has an effect to restore (interval excludes 0 and at least ${MIN_GAP} logits).`}`,
        evidence: {
          ...Object.fromEntries(
            analysed.map((g) => [
              `groups[${g.name}].effect`,
              `${g.effect.mean} [${g.effect.ciLow}, ${g.effect.ciHigh}]`,
            ]),
          ),
          rule: `normalised when the effect interval excludes 0 and |effect.mean| >= ${MIN_GAP}`,
        },
      });
    }
    return out;
  },
};
