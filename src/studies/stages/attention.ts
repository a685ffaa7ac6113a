/** Attention: the focus group's top heads (by DLA) on example prompts. */
import { headPatterns } from "../../analysis/head-patterns.ts";
import { formatMeanCi } from "../../analysis/stats.ts";
import { attentionView } from "../../viz/views/view-figures.ts";
import type { PreparedGroup, StudyContext } from "../context.ts";
import { pct } from "../format.ts";
import type { FocusResult } from "../results.ts";
import type { Stage, StageSlice } from "../stage.ts";
import { type SampleSummary, summarizeSample } from "../summaries.ts";

type Slice = StageSlice & { focus: Pick<FocusResult, "attention" | "cueAttention"> };

/** A head "moves information from the cue" in the summary when its mean attention from the final position to the cue is at least this. */
export const CUE_ATTENTION = 0.3;

/**
 * Each head's attention from the final position to the cue (the positions where clean and corrupted
 * differ, summed), over every prompt of the group; seeds from `seedOffset` on.
 */
export function attentionToCue(
  ctx: StudyContext,
  g: PreparedGroup,
  heads: { layer: number; head: number }[],
  seedOffset: number,
): SampleSummary[] {
  const perPrompt = g.pairs.map((p) =>
    headPatterns(ctx.model, p.cleanTokens, heads).map((pat) =>
      p.diffPositions.reduce((a, pos) => a + pat.at(-1)![pos], 0),
    ),
  );
  return heads.map((_, k) =>
    summarizeSample(
      perPrompt.map((row) => row[k]),
      ctx.boot(seedOffset + k),
    ),
  );
}

export const attentionStage: Stage<Slice> = {
  name: "attention patterns",
  run(ctx, res) {
    const topHeads = res.focus.topHeads ?? [];
    if (!topHeads.length) return { focus: {} };
    const examples = ctx.focus.pairs.slice(0, ctx.plan.attentionExamples);
    const toCue = attentionToCue(
      ctx,
      ctx.focus,
      topHeads.map((c) => ({ layer: c.row, head: c.col })),
      9400,
    );
    return {
      focus: {
        cueAttention: topHeads.map((c, k) => ({ head: c.label, toCue: toCue[k] })),
        attention: examples.map((p) => {
          const pats = headPatterns(
            ctx.model,
            p.cleanTokens,
            topHeads.map((c) => ({ layer: c.row, head: c.col })),
          );
          return {
            prompt: p.clean,
            tokens: ctx.model.toStrTokens(p.cleanTokens),
            cue: p.diffPositions,
            heads: topHeads.map((c, i) => ({ label: c.label, pattern: pats[i] })),
          };
        }),
      },
    };
  },
  sections(res) {
    const figures = (res.focus.attention ?? [])
      .filter((ex) => ex.heads.length)
      .map((ex, i) => ({
        name: `focus-attention-${i + 1}`,
        figure: attentionView({
          title: `Attention of the top heads: "${ex.prompt}"`,
          tokens: ex.tokens,
          heads: ex.heads,
        }),
        caption: `Attention patterns of ${ex.heads.map((h) => h.label).join(", ")} on an example prompt. From the final token (${JSON.stringify(ex.tokens.at(-1))}), ${ex.heads
          .map((h) => {
            const row = h.pattern.at(-1)!;
            const k = row.indexOf(Math.max(...row));
            const cue = (ex.cue ?? []).reduce((a, p) => a + row[p], 0);
            return `${h.label} attends most to ${JSON.stringify(ex.tokens[k])} (${pct(row[k])})${ex.cue?.length ? `, ${pct(cue)} to the cue` : ""}`;
          })
          .join("; ")}.`,
      }));
    const ca = res.focus.cueAttention ?? [];
    return figures.length
      ? [
          {
            heading: `Attention of the top heads (${res.focusGroup})`,
            text: ca.length
              ? `Attention from the final position to the cue (the positions where clean and corrupted differ), mean over ${ca[0].toCue.n} prompts with 95% intervals: ${ca.map((c) => `${c.head} ${formatMeanCi(c.toCue)}`).join("; ")}.`
              : undefined,
            figures,
          },
        ]
      : [];
  },
  findings(res) {
    const ca = res.focus.cueAttention ?? [];
    const movers = ca.filter((c) => c.toCue.ciLow >= CUE_ATTENTION);
    if (!ca.length) return [];
    return [
      {
        text: movers.length
          ? `From the final position, ${movers.map((c) => `${c.head} attends ${formatMeanCi(c.toCue)} to the cue`).join("; ")} (interval at or above ${CUE_ATTENTION}).`
          : `None of the top heads by DLA attends from the final position to the cue with an interval at or above ${CUE_ATTENTION} (${ca.map((c) => `${c.head} ${formatMeanCi(c.toCue)}`).join("; ")}).`,
        evidence: Object.fromEntries([
          ...ca.map((c) => [`focus.cueAttention[${c.head}].toCue.ciLow`, c.toCue.ciLow]),
          ["threshold", CUE_ATTENTION],
        ]),
      },
    ];
  },
};
