/**
 * The README's "What circuitscope finds" paragraph, generated from a pronoun study's results group by
 * group: every statement lists the groups it is about, and names no group it was not measured on
 * (test/studies/pronouns.test.ts pins this). `scripts/readme-finding.ts results.json` prints it.
 */
import { formatMeanCi } from "../../analysis/stats.ts";
import { groupOf } from "../context.ts";
import { f2, pct, signed } from "../format.ts";
import type { GroupResult, StudyResults } from "../results.ts";
import { headsThatMatter } from "../stages/components.ts";
import { mechanismBrief } from "../stages/mechanisms.ts";
import { MATTERS } from "../stages/patching.ts";

/** One sentence and the groups whose measurements it states. */
export interface Statement {
  text: string;
  groups: string[];
}

const where = (row: string) =>
  row.startsWith("after ") ? `only in the stream leaving ${row.slice(6)}` : `from ${row} on`;

function mechanismSentence(g: GroupResult): Statement {
  const b = mechanismBrief(g);
  const heads = headsThatMatter(g).slice(0, 3);
  const headText = heads
    .map(
      (h) =>
        `${h.head} ${f2(h.output.mean)} (value ${f2(h.value.mean)}, pattern ${f2(h.pattern.mean)}, attention to the cue ${f2(h.toCue.mean)})`,
    )
    .join(", ");
  return {
    groups: [g.name],
    text: `In ${g.name}, the final position's residual stream restores at least ${pct(MATTERS)} of the gap ${b.finalFrom ? where(b.finalFrom) : "at no layer"}, and patching a head's output restores most for ${headText || "no single head"}.`,
  };
}

export function findingParagraph(res: StudyResults): Statement[] {
  const F = res.focusGroup;
  const fg = groupOf(res, F);
  const out: Statement[] = [
    {
      groups: [F],
      text: `The model does it: in ${F} the logit difference is ${formatMeanCi(fg.cleanLogitDiff)} and swapping the cue moves it by ${formatMeanCi(fg.effect)}.`,
    },
  ];
  const measured = res.groups.filter((g) => g.headSplit && g.positionPatching && g.normalised);
  out.push(...measured.map(mechanismSentence));
  if (measured.length > 1) {
    const briefs = measured.map(mechanismBrief);
    const top = new Set(briefs.map((b) => b.topHead?.head ?? "none"));
    out.push({
      groups: measured.map((g) => g.name),
      text:
        top.size > 1
          ? `So the mechanism depends on the cue: the head whose output restores most is ${briefs.map((b) => `${b.topHead?.head ?? "none"} in ${b.group}`).join(", ")}; in every one of these groups its value, not its pattern, carries the gender${briefs.every((b) => b.topHead && Math.abs(b.topHead.value) >= 2 * Math.abs(b.topHead.pattern)) ? "" : " (not in all: see the report)"}.`
          : `The same head restores most in ${briefs.map((b) => b.group).join(", ")}: ${[...top][0]}.`,
    });
  }
  const effect = res.comparisons.items.filter((c) => c.metric.startsWith(res.words.effect));
  const sig = effect.filter((c) => c.significant);
  if (sig.length) {
    out.push({
      groups: [F, ...sig.map((c) => c.group)],
      text: `Against ${F}, the ${res.words.effect} differs (Holm-adjusted p < ${res.comparisons.alpha}) in ${sig.map((c) => `${c.group} (${signed(c.diff)})`).join(", ")}.`,
    });
  }
  const mirrors = (res.comparisons.mirrored ?? []).filter((m) => m.metric.startsWith(res.words.effect));
  if (mirrors.length) {
    out.push({
      groups: mirrors.flatMap((m) => [m.group, m.mirrorOf]),
      text: `The he groups are the she groups' texts with the roles swapped, so their ${res.words.effect} is the same by construction (${mirrors.map((m) => `${m.group} = ${m.mirrorOf}`).join(", ")}): they are reported as mirrors, not as findings.`,
    });
  }
  const templates = res.prompts.groups.find((g) => g.name === F)?.templates;
  if (templates !== undefined) {
    out.push({
      groups: [F],
      text: `Intervals are 95% bootstrap intervals over the ${fg.n} prompts of a group, drawn from ${templates} template texts (${F}): they measure template variety, not sampling from a larger population.`,
    });
  }
  const notDone = res.groups.filter((g) => !g.analysed);
  if (notDone.length) {
    out.push({
      groups: notDone.map((g) => g.name),
      text: `The model does not do ${notDone.map((g) => `${g.name} (clean ${formatMeanCi(g.cleanLogitDiff)})`).join(", ")}: the report leaves ${notDone.length === 1 ? "it" : "them"} out.`,
    });
  }
  return out;
}
