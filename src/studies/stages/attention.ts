/** Attention: the focus group's top heads (by DLA) on example prompts. */
import { headPatterns } from "../../analysis/head-patterns.ts";
import { attentionView } from "../../viz/views/view-figures.ts";
import { pct } from "../format.ts";
import type { FocusResult } from "../results.ts";
import type { Stage, StageSlice } from "../stage.ts";

type Slice = StageSlice & { focus: Pick<FocusResult, "attention"> };

export const attentionStage: Stage<Slice> = {
  name: "attention patterns",
  run(ctx, res) {
    const topHeads = res.focus.topHeads ?? [];
    if (!topHeads.length) return { focus: {} };
    const examples = ctx.focus.pairs.slice(0, ctx.plan.attentionExamples);
    return {
      focus: {
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
    return figures.length ? [{ heading: `Attention of the top heads (${res.focusGroup})`, figures }] : [];
  },
};
