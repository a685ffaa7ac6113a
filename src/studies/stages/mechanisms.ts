/**
 * The mechanism groups side by side: where the final position first carries the cue and which head's
 * output restores the most, per group, and a summary sentence that says where they differ. It measures
 * nothing itself: it reads what the position and head-part stages measured on each group.
 */
import { formatMeanCi } from "../../analysis/stats.ts";
import { heatmap } from "../../viz/charts/heatmap.ts";
import { f2, pct } from "../format.ts";
import type { GroupResult, StudyResults } from "../results.ts";
import type { Stage } from "../stage.ts";
import { headsThatMatter } from "./components.ts";
import { cellOf } from "./head-dla.ts";
import { MATTERS, patchUnit } from "./patching.ts";

/** What one group's mechanism looks like, in the terms the summary compares. */
export interface MechanismBrief {
  group: string;
  /** The first resid_pre row (label) where the final position carries at least MATTERS, or null. */
  finalFrom: string | null;
  finalFromValue: number | null;
  /** The head whose output patching restores the most (at least HEAD_MATTERS), with what carries it. */
  topHead: { head: string; output: number; value: number; pattern: number; toCue: number } | null;
  /** Heads whose output matters, by layer. */
  heads: string[];
}

export function mechanismBrief(g: GroupResult): MechanismBrief {
  const resid = g.positionPatching?.find((p) => p.component === "resid_pre")?.grid;
  const final = g.positions?.final;
  let finalFrom: string | null = null;
  let finalFromValue: number | null = null;
  if (resid && final !== undefined) {
    const l = resid.rowLabels.findIndex(
      (_, r) => resid.mean[r][final] >= MATTERS && resid.ciLow[r][final] > 0,
    );
    if (l >= 0) {
      finalFrom = resid.rowLabels[l];
      finalFromValue = resid.mean[l][final];
    }
  }
  const heads = headsThatMatter(g);
  const t = heads[0];
  return {
    group: g.name,
    finalFrom,
    finalFromValue,
    topHead: t
      ? {
          head: t.head,
          output: t.output.mean,
          value: t.value.mean,
          pattern: t.pattern.mean,
          toCue: t.toCue.mean,
        }
      : null,
    heads: heads
      .map((h) => h.head)
      .sort((a, b) => cellOf(a)[0] - cellOf(b)[0] || cellOf(a)[1] - cellOf(b)[1]),
  };
}

/** A resid_pre row label as a place: "entering L3", "in the stream leaving L4" (the extra last row). */
const where = (row: string | null) =>
  row === null
    ? "at no layer"
    : row.startsWith("after ")
      ? `in the stream leaving ${row.slice(6)}`
      : `entering ${row}`;

const measured = (res: StudyResults) => res.groups.filter((g) => g.headSplit && g.positionPatching);

function describeGroup(b: MechanismBrief, g: GroupResult): string {
  const from = b.finalFrom
    ? `the final position first carries at least ${pct(MATTERS)} ${where(b.finalFrom)} (${f2(b.finalFromValue!)})`
    : `the final position never carries ${pct(MATTERS)}`;
  const hs = g.headSplit!;
  const k = b.topHead ? hs.heads.indexOf(b.topHead.head) : -1;
  const head =
    k >= 0
      ? `the head whose output restores most is ${b.topHead!.head} (${formatMeanCi({ mean: hs.exact.mean[k][0], ciLow: hs.exact.ciLow[k][0], ciHigh: hs.exact.ciHigh[k][0] })}; attention to the cue ${f2(b.topHead!.toCue)})`
      : "no head's output restores 10% alone";
  return `${b.group}: ${from}; ${head}; heads that matter: ${b.heads.join(", ") || "none"}`;
}

export const mechanismStage: Stage = {
  name: "mechanisms compared",
  run: () => ({}),
  sections(res) {
    const gs = measured(res);
    if (gs.length < 2) return [];
    const union = [...new Set(gs.flatMap((g) => g.headSplit!.heads))].sort(
      (a, b) => cellOf(a)[0] - cellOf(b)[0] || cellOf(a)[1] - cellOf(b)[1],
    );
    const output = (g: GroupResult, h: string) => {
      const k = g.headSplit!.heads.indexOf(h);
      return k < 0 ? null : g.headSplit!.exact.mean[k][g.headSplit!.parts.indexOf("output")];
    };
    return [
      {
        heading: "The mechanism in each measured group",
        text: gs.map((g) => `${describeGroup(mechanismBrief(g), g)}.`).join("\n\n"),
        figures: [
          {
            name: "mechanism-head-output",
            figure: heatmap({
              title: "Patching each head's output, per mechanism group",
              rowLabels: gs.map((g) => g.name),
              colLabels: union,
              values: gs.map((g) => union.map((h) => output(g, h))),
              rowTitle: "group",
              colTitle: "head",
              valueTitle: patchUnit(gs[0]),
              scale: "diverging",
            }),
            caption: `Exact patching of each head's output (all positions) in each group where the mechanism was measured; a head is patched in a group only when it is among that group's top heads by attribution estimate (grey: not computed there).`,
          },
        ],
      },
    ];
  },
  findings(res) {
    const gs = measured(res).filter((g) => g.normalised);
    if (gs.length < 2) return [];
    const briefs = gs.map(mechanismBrief);
    const same = (f: (b: MechanismBrief) => string | null | undefined) => new Set(briefs.map(f)).size === 1;
    const sameHead = same((b) => b.topHead?.head);
    const sameFrom = same((b) => b.finalFrom);
    const names = briefs.map((b) => b.group).join(", ");
    const text =
      sameHead && sameFrom
        ? `The mechanism measured on ${names} is alike: in each, ${briefs[0].topHead ? `${briefs[0].topHead.head}'s output restores the most` : "no head's output restores 10% alone"} and the final position first carries at least ${pct(MATTERS)} ${where(briefs[0].finalFrom)}.`
        : `The mechanism differs between ${names}: ${[
            sameHead
              ? ""
              : `the head whose output restores the most is ${briefs.map((b) => `${b.topHead?.head ?? "none"} in ${b.group}`).join(", ")}`,
            sameFrom
              ? ""
              : `the final position first carries at least ${pct(MATTERS)} ${briefs.map((b) => `${where(b.finalFrom)} in ${b.group}`).join(", ")}`,
          ]
            .filter(Boolean)
            .join("; ")}.`;
    return [
      {
        text,
        groups: briefs.map((b) => b.group),
        evidence: Object.fromEntries(
          briefs.map((b) => [
            `groups[${b.group}] (group ${b.group})`,
            JSON.stringify({ finalFrom: b.finalFrom, topHead: b.topHead?.head ?? null, heads: b.heads }),
          ]),
        ),
      },
    ];
  },
};
