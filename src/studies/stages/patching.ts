/**
 * Layer and position patching of the focus group: exact patching of resid_pre / attn_out / mlp_out per
 * layer (all positions), then per layer and position.
 */

import { formatMeanCi, formatMeanSe } from "../../analysis/stats.ts";
import { blockHookName } from "../../model/hook-points.ts";
import { formatToken } from "../../tokenizer/format-token.ts";
import { heatmap } from "../../viz/charts/heatmap.ts";
import { groupOf, normalise, toPairTokens } from "../context.ts";
import { argmaxAbs, pct } from "../format.ts";
import { exactEffects } from "../pair-measures.ts";
import type { ValidatedPair } from "../prompts.ts";
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

/** The label of the resid_pre grid's extra row: the residual stream leaving the last layer. */
const afterLast = (nLayers: number) => `after L${nLayers - 1}`;

const ranges = (layers: number[], labels?: readonly string[]) =>
  layers.length ? layers.map((l) => labels?.[l] ?? `L${l}`).join(", ") : "none";

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
    // Per position needs prompts that share positions: the focus pairs of the most common length and cue positions.
    const signature = (p: ValidatedPair) => `${p.cleanTokens.length}:${p.diffPositions.join(",")}`;
    const counts = new Map<string, number>();
    for (const p of ctx.focus.pairs) counts.set(signature(p), (counts.get(signature(p)) ?? 0) + 1);
    const common = [...counts].reduce((b, x) => (x[1] > b[1] ? x : b))[0];
    const positionPairs = ctx.focus.pairs
      .filter((p) => signature(p) === common)
      .slice(0, ctx.plan.positionPrompts);
    if (positionPairs.length < Math.min(ctx.plan.positionPrompts, ctx.focus.pairs.length)) {
      ctx.omitted.push(
        `per-position patching used the ${positionPairs.length} focus prompts that share one token layout (${positionPairs[0].cleanTokens.length} tokens, the cue at the same positions); prompts of other layouts do not align by position`,
      );
    }
    // Template role names, or the tokens written the one way tokens are shown (leading space as ·).
    const roles =
      positionPairs[0].roles ?? ctx.model.toStrTokens(positionPairs[0].cleanTokens).map(formatToken);
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
      const rows = layerLabels.map((_, l) => (b: number) => roles.map((_, p) => r[l * roles.length + p][b]));
      if (name === "resid_pre") {
        // One more row, the residual stream leaving the last layer: where the final position must end up.
        const out = await exactEffects(
          ctx.model,
          pp,
          {
            kind: "sites",
            sites: roles.map((_, p) => ({
              hook: blockHookName(L - 1, "hook_resid_post"),
              selectors: [[p, null]],
            })),
          },
          ctx.work(pp.clean.length),
        );
        rows.push((b) => roles.map((_, p) => out[p][b]));
      }
      const grid = summarizeGrid(
        name === "resid_pre" ? [...layerLabels, afterLast(L)] : layerLabels,
        roles,
        pp.clean.map((_, b) => rows.map((row) => row(b).map((v) => normalise(fg, v)))),
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
          title:
            p.component === "resid_pre"
              ? `Patching the residual stream per layer and position (${F})`
              : `Patching ${p.component} per layer and position (${F})`,
          rowLabels: p.grid.rowLabels,
          colLabels: p.grid.colLabels,
          values: p.grid.mean,
          rowTitle: "layer",
          colTitle: "position",
          valueTitle: unit,
        }),
        caption: `Exact patching of ${p.component === "resid_pre" ? "the residual stream entering each layer (resid_pre; the last row is the stream leaving the last layer)" : p.component} at one layer and one position (${p.grid.n} prompts; position labels are ${res.focus.positions?.labelsFrom}). Strongest: ${p.grid.rowLabels[b.r]} at the ${JSON.stringify(p.grid.colLabels[b.c])} position, ${cellText(p.grid, b.r, b.c)} (± one SE).`,
      });
    }
    return figures.length
      ? [{ heading: `Where the information is: layers and positions (${F})`, figures }]
      : [];
  },
  findings(res) {
    const F = res.focusGroup;
    const fg = groupOf(res, F);
    const out: Finding[] = [];
    if (!fg.normalised || !res.focus.layerPatching) return out;
    const lp = res.focus.layerPatching;
    const matters = (r: number) =>
      lp.mean[r].flatMap((v, l) => (v >= MATTERS && lp.ciLow[r][l] > 0 ? [l] : []));
    out.push({
      text: `In ${F}, patching a whole layer output from the clean run restores at least ${pct(MATTERS)} of the gap (interval above 0) for the attention output of ${ranges(matters(1))} and the MLP output of ${ranges(matters(2))}.`,
      evidence: {
        "focus.layerPatching.mean[attn_out, mlp_out]": JSON.stringify(
          lp.mean.slice(1).map((r) => r.map((v) => +v.toFixed(3))),
        ),
        threshold: MATTERS,
      },
    });
    const resid = res.focus.positionPatching?.find((p) => p.component === "resid_pre")?.grid;
    const pos = res.focus.positions;
    if (!resid || !pos?.cue.length) return out;
    const carries = (l: number, p: number) => resid.mean[l][p] >= CARRIES && resid.ciLow[l][p] > 0;
    const rl = resid.rowLabels;
    const layers = rl.map((_, l) => l);
    const cueLayers = layers.filter((l) => pos.cue.some((p) => carries(l, p)));
    const finalLayers = layers.filter((l) => carries(l, pos.final));
    const cueText = pos.cue.map((p) => JSON.stringify(pos.labels[p])).join(" ");
    // Attention and MLP outputs at the final position: where the information arrives there.
    const atFinal = (component: string) => {
      const g = res.focus.positionPatching?.find((p) => p.component === component)?.grid;
      return g
        ? g.rowLabels.flatMap((_, l) =>
            g.mean[l][pos.final] >= MATTERS && g.ciLow[l][pos.final] > 0 ? [l] : [],
          )
        : [];
    };
    const attnFinal = atFinal("attn_out");
    const attnGrid = res.focus.positionPatching?.find((p) => p.component === "attn_out")?.grid;
    let handOver = "";
    if (cueLayers.length && finalLayers.length) {
      const lastCue = Math.max(...cueLayers);
      const firstFinal = Math.min(...finalLayers);
      handOver =
        firstFinal > lastCue
          ? ` In the residual stream the cue position carries it up to ${rl[lastCue]} and the final position from ${rl[firstFinal]}: the hand-over is between the two.`
          : ` Both carry it at ${ranges(
              layers.filter((l) => cueLayers.includes(l) && finalLayers.includes(l)),
              rl,
            )}.`;
    }
    if (cueLayers.length && attnFinal.length && attnGrid) {
      // The final position's residual never carries it before the last layer: it arrives through attention.
      const k = attnFinal.find((l) => cueLayers.includes(l));
      if (k !== undefined) {
        handOver += ` The residual stream at the cue carries it into L${k}, and L${k}'s attention output at the final position restores ${formatMeanCi({ mean: attnGrid.mean[k][pos.final], ciLow: attnGrid.ciLow[k][pos.final], ciHigh: attnGrid.ciHigh[k][pos.final] })} of the gap: the hand-over from the cue to the final position happens in L${k}'s attention.`;
      }
    }
    const mlpFinal = atFinal("mlp_out");
    out.push({
      text: `Patching the residual stream entering a layer (resid_pre) at one position restores at least ${pct(CARRIES)} of the gap (interval above 0) at a cue position (${cueText}) for ${ranges(cueLayers, rl)}, and at the final position (${JSON.stringify(pos.labels[pos.final])}) for ${ranges(finalLayers, rl)}. At the final position, patching the attention output restores at least ${pct(MATTERS)} at ${ranges(attnFinal)}, the MLP output at ${ranges(mlpFinal)}.${handOver}`,
      evidence: {
        "focus.positionPatching[resid_pre], best cue position per layer": JSON.stringify(
          layers.map((l) => Math.max(...pos.cue.map((p) => +resid.mean[l][p].toFixed(3)))),
        ),
        "focus.positionPatching[resid_pre], final position per layer": JSON.stringify(
          layers.map((l) => +resid.mean[l][pos.final].toFixed(3)),
        ),
        "focus.positionPatching[attn_out], final position per layer": JSON.stringify(
          (attnGrid?.mean ?? []).map((row) => +row[pos.final].toFixed(3)),
        ),
        thresholds: `resid_pre ${CARRIES}, attn_out/mlp_out ${MATTERS}`,
      },
    });
    return out;
  },
};
