/**
 * Layer and position patching of the focus group: exact patching of resid_pre / attn_out / mlp_out per
 * layer (all positions), then per layer and position.
 */

import { formatMeanSe } from "../../analysis/stats.ts";
import { blockHookName } from "../../model/hook-points.ts";
import { heatmap } from "../../viz/charts/heatmap.ts";
import { groupOf, normalise, toPairTokens } from "../context.ts";
import { argmaxAbs, pct } from "../format.ts";
import { exactEffects } from "../pair-measures.ts";
import type { Finding, FocusResult, GroupResult } from "../results.ts";
import { wholeHook } from "../sites.ts";
import type { NamedFigure, Stage, StageSlice } from "../stage.ts";
import { type GridSummary, summarizeGrid } from "../summaries.ts";

type Slice = StageSlice & { focus: Pick<FocusResult, "layerPatching" | "positionPatching" | "positions"> };

const LAYER_HOOKS = [
  ["resid_pre", "hook_resid_pre"],
  ["attn_out", "hook_attn_out"],
  ["mlp_out", "hook_mlp_out"],
] as const;

/** The unit of a group's patching numbers, for axis and legend titles. */
export const patchUnit = (g: GroupResult) =>
  g.normalised ? "fraction restored" : "change in logit diff (not normalised)";

export const cellText = (grid: GridSummary, r: number, c: number) =>
  formatMeanSe({ mean: grid.mean[r][c], se: grid.se[r][c] });

/** A position or component "carries" the information in the summary when patching it restores at least this fraction (interval above 0). */
export const CARRIES = 0.5;
/** A layer output "matters" in the summary when patching it restores at least this fraction (interval excluding 0). */
export const MATTERS = 0.2;

const ranges = (layers: number[]) => (layers.length ? layers.map((l) => `L${l}`).join(", ") : "none");

export const patchingStage: Stage<Slice> = {
  name: "layer and position patching",
  async run(ctx, res) {
    const focus: Slice["focus"] = {};
    if (!ctx.analysed(res).includes(ctx.focus)) return { focus };
    const { nLayers: L } = ctx.model.cfg;
    const fg = groupOf(res, ctx.focus.name);
    const fd = ctx.focus.tokens;
    const layerLabels = Array.from({ length: L }, (_, l) => `L${l}`);
    const layerExact = await exactEffects(
      ctx.model,
      fd,
      {
        kind: "sites",
        sites: LAYER_HOOKS.flatMap(([, hook]) =>
          layerLabels.map((_, l) => wholeHook(blockHookName(l, hook))),
        ),
      },
      ctx.work(fd.clean.length),
    ); // [component * L + layer][prompt]
    focus.layerPatching = summarizeGrid(
      LAYER_HOOKS.map(([n]) => n),
      layerLabels,
      fd.clean.map((_, b) =>
        LAYER_HOOKS.map((_, r) => layerLabels.map((_, l) => normalise(fg, layerExact[r * L + l][b]))),
      ),
      ctx.boot(9001),
    );
    // Per position needs prompts that share positions: the focus pairs of the most common length.
    const lengths = ctx.focus.pairs.map((p) => p.cleanTokens.length);
    const modal = lengths.reduce(
      (b, n) => (lengths.filter((x) => x === n).length > lengths.filter((x) => x === b).length ? n : b),
      lengths[0],
    );
    const positionPairs = ctx.focus.pairs
      .filter((p) => p.cleanTokens.length === modal)
      .slice(0, ctx.plan.positionPrompts);
    if (positionPairs.length < ctx.focus.pairs.slice(0, ctx.plan.positionPrompts).length) {
      ctx.omitted.push(
        `per-position patching used the ${positionPairs.length} focus prompts of ${modal} tokens (prompts of other lengths do not align by position)`,
      );
    }
    const roles = positionPairs[0].roles ?? ctx.model.toStrTokens(positionPairs[0].cleanTokens);
    const pp = toPairTokens(positionPairs);
    focus.positions = {
      labels: roles,
      cue: [...new Set(positionPairs.flatMap((p) => p.diffPositions))].sort((a, b) => a - b),
      final: roles.length - 1,
      labelsFrom: positionPairs[0].roles ? "template roles" : `the tokens of "${positionPairs[0].clean}"`,
    };
    focus.positionPatching = [];
    for (const [ci, [name]] of LAYER_HOOKS.entries()) {
      // The shared resid_pre / attn_out / mlp_out targets are [layer, pos] sweeps.
      const r = await exactEffects(ctx.model, pp, { kind: name }, ctx.work(pp.clean.length));
      const grid = summarizeGrid(
        layerLabels,
        roles,
        pp.clean.map((_, b) =>
          layerLabels.map((_, l) => roles.map((_, p) => normalise(fg, r[l * roles.length + p][b]))),
        ),
        ctx.boot(9100 + ci),
      );
      focus.positionPatching.push({ component: name, grid });
    }
    return { focus };
  },
  sections(res) {
    const F = res.focusGroup;
    const fg = groupOf(res, F);
    const unit = patchUnit(fg);
    const figures: NamedFigure[] = [];
    const lp = res.focus.layerPatching;
    if (lp) {
      const b = argmaxAbs(lp);
      figures.push({
        name: "focus-layer-patching",
        figure: heatmap({
          title: `Activation patching per layer, clean → corrupted (${F})`,
          rowLabels: lp.rowLabels,
          colLabels: lp.colLabels,
          values: lp.mean,
          rowTitle: "activation",
          colTitle: "layer",
          valueTitle: unit,
        }),
        caption: `Exact patching of each layer's residual input, attention output and MLP output at all positions (${lp.n} prompts); ${fg.normalised ? "1 = the clean logit difference restored" : "no effect to restore in this group: raw change of the logit difference"}. Strongest: ${lp.rowLabels[b.r]} at ${lp.colLabels[b.c]}, ${cellText(lp, b.r, b.c)} (± one SE).`,
      });
    }
    for (const p of res.focus.positionPatching ?? []) {
      const b = argmaxAbs(p.grid);
      figures.push({
        name: `focus-position-patching-${p.component}`,
        figure: heatmap({
          title: `Patching ${p.component} per layer and position (${F})`,
          rowLabels: p.grid.rowLabels,
          colLabels: p.grid.colLabels,
          values: p.grid.mean,
          rowTitle: "layer",
          colTitle: "position",
          valueTitle: unit,
        }),
        caption: `Exact patching of ${p.component} at one layer and one position (${p.grid.n} prompts; position labels are ${res.focus.positions?.labelsFrom}). Strongest: ${p.grid.rowLabels[b.r]} at the ${JSON.stringify(p.grid.colLabels[b.c])} position, ${cellText(p.grid, b.r, b.c)} (± one SE).`,
      });
    }
    return figures.length
      ? [{ heading: `Where the information is: layers and positions (${F})`, figures }]
      : [];
  },
};
