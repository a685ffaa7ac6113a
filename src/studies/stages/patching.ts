/**
 * Layer and position patching of the focus group: exact patching of resid_pre / attn_out / mlp_out per
 * layer (all positions), then per layer and position.
 */

import { formatMeanCi, formatMeanSe } from "../../analysis/stats.ts";
import { blockHookName } from "../../model/hook-points.ts";
import { formatToken } from "../../tokenizer/format-token.ts";
import { heatmap, sharedHeatmapDomain } from "../../viz/charts/heatmap.ts";
import { groupOf, normalise, type PreparedGroup, type StudyContext, toPairTokens } from "../context.ts";
import { argmaxAbs, f2, pct } from "../format.ts";
import { exactEffects } from "../pair-measures.ts";
import type { ValidatedPair } from "../prompts.ts";
import type { Finding, GroupResult, StudyResults } from "../results.ts";
import { wholeHook } from "../sites.ts";
import type { NamedFigure, Stage, StageSlice } from "../stage.ts";
import { type GridSummary, summarizeGrid } from "../summaries.ts";

type GroupSlice = Pick<GroupResult, "layerPatching" | "positionPatching" | "positions">;
type Slice = StageSlice & { groups: Map<string, GroupSlice> };

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

/** A figure's file name: the focus group's keep their historical names, other groups' carry the group. */
export const mechanismFigure = (res: Pick<StudyResults, "focusGroup">, group: string, what: string) =>
  group === res.focusGroup ? `focus-${what}` : `mechanism-${group}-${what}`;

/** Layer patching and per-position patching of one group (the stage runs it on every mechanism group). */
async function measureGroup(ctx: StudyContext, g: PreparedGroup, gr: GroupResult): Promise<GroupSlice> {
  const { nLayers: L } = ctx.model.cfg;
  const out: GroupSlice = {};
  const fd = g.tokens;
  const layerLabels = Array.from({ length: L }, (_, l) => `L${l}`);
  const layerExact = await exactEffects(
    ctx.model,
    fd,
    {
      kind: "sites",
      sites: LAYER_HOOKS.flatMap(([, hook]) => layerLabels.map((_, l) => wholeHook(blockHookName(l, hook)))),
    },
    ctx.work(fd.clean.length),
  ); // [component * L + layer][prompt]
  out.layerPatching = summarizeGrid(
    LAYER_HOOKS.map(([n]) => n),
    layerLabels,
    fd.clean.map((_, b) =>
      LAYER_HOOKS.map((_, r) => layerLabels.map((_, l) => normalise(gr, layerExact[r * L + l][b]))),
    ),
    ctx.boot(100 * g.index + 9001),
  );
  // Per position needs prompts that share positions: the group's pairs of the most common length and cue positions.
  const signature = (p: ValidatedPair) => `${p.cleanTokens.length}:${p.diffPositions.join(",")}`;
  const counts = new Map<string, number>();
  for (const p of g.pairs) counts.set(signature(p), (counts.get(signature(p)) ?? 0) + 1);
  const common = [...counts].reduce((b, x) => (x[1] > b[1] ? x : b))[0];
  const positionPairs = g.pairs.filter((p) => signature(p) === common).slice(0, ctx.plan.positionPrompts);
  if (positionPairs.length < Math.min(ctx.plan.positionPrompts, g.pairs.length)) {
    ctx.omitted.push(
      `per-position patching of ${g.name} used the ${positionPairs.length} prompts that share one token layout (${positionPairs[0].cleanTokens.length} tokens, the cue at the same positions); prompts of other layouts do not align by position`,
    );
  }
  // Template role names, or the tokens written the one way tokens are shown (leading space as ·).
  const roles =
    positionPairs[0].roles ?? ctx.model.toStrTokens(positionPairs[0].cleanTokens).map(formatToken);
  const pp = toPairTokens(positionPairs);
  out.positions = {
    labels: roles,
    cue: [...new Set(positionPairs.flatMap((p) => p.diffPositions))].sort((a, b) => a - b),
    final: roles.length - 1,
    labelsFrom: positionPairs[0].roles ? "template roles" : `the tokens of "${positionPairs[0].clean}"`,
  };
  out.positionPatching = [];
  for (const [ci, [name]] of LAYER_HOOKS.entries()) {
    // The shared resid_pre / attn_out / mlp_out targets are [layer, pos] sweeps.
    const r = await exactEffects(ctx.model, pp, { kind: name }, ctx.work(pp.clean.length));
    const rows = layerLabels.map((_, l) => (b: number) => roles.map((_, p) => r[l * roles.length + p][b]));
    if (name === "resid_pre") {
      // One more row, the residual stream leaving the last layer: where the final position must end up.
      const after = await exactEffects(
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
      rows.push((b) => roles.map((_, p) => after[p][b]));
    }
    const grid = summarizeGrid(
      name === "resid_pre" ? [...layerLabels, afterLast(L)] : layerLabels,
      roles,
      pp.clean.map((_, b) => rows.map((row) => row(b).map((v) => normalise(gr, v)))),
      ctx.boot(100 * g.index + 9100 + ci),
    );
    out.positionPatching.push({ component: name, grid });
  }
  return out;
}

export const patchingStage: Stage<Slice> = {
  name: "layer and position patching",
  async run(ctx, res) {
    const groups: Slice["groups"] = new Map();
    for (const g of ctx.mechanismGroups(res))
      groups.set(g.name, await measureGroup(ctx, g, groupOf(res, g.name)));
    return { groups };
  },
  sections(res) {
    const measured = res.groups.filter((g) => g.layerPatching);
    // One colour domain per component across the groups, so the same colour means the same fraction in each.
    const domainOf = (component: string) =>
      sharedHeatmapDomain(
        measured.flatMap((g) =>
          (g.positionPatching ?? [])
            .filter((p) => p.component === component)
            .map((p) => ({ values: p.grid.mean, scale: "diverging" as const })),
        ),
      );
    const layerDomain = sharedHeatmapDomain(
      measured.map((g) => ({ values: g.layerPatching!.mean, scale: "diverging" as const })),
    );
    return measured.map((g) => ({
      heading: `Where the information is: layers and positions (${g.name})`,
      figures: groupFigures(res, g, layerDomain, domainOf),
    }));
  },
  findings(res) {
    return res.groups.filter((g) => g.layerPatching && g.normalised).flatMap(groupFindings);
  },
};

function groupFigures(
  res: StudyResults,
  g: GroupResult,
  layerDomain: [number, number],
  domainOf: (component: string) => [number, number],
): NamedFigure[] {
  const G = g.name;
  const unit = patchUnit(g);
  const figures: NamedFigure[] = [];
  const lp = g.layerPatching!;
  const b = argmaxAbs(lp);
  figures.push({
    name: mechanismFigure(res, G, "layer-patching"),
    figure: heatmap({
      title: `Activation patching per layer, clean → corrupted (${G})`,
      rowLabels: lp.rowLabels,
      colLabels: lp.colLabels,
      values: lp.mean,
      rowTitle: "activation",
      colTitle: "layer",
      valueTitle: unit,
      scale: "diverging",
      domain: layerDomain,
    }),
    caption: `Exact patching of each layer's residual input, attention output and MLP output at all positions (${lp.n} prompts); ${g.normalised ? "1 = the clean logit difference restored" : "no effect to restore in this group: raw change of the logit difference"}. Strongest: ${lp.rowLabels[b.r]} at ${lp.colLabels[b.c]}, ${cellText(lp, b.r, b.c)} (± one SE).`,
  });
  for (const p of g.positionPatching ?? []) {
    const c = argmaxAbs(p.grid);
    figures.push({
      name: mechanismFigure(res, G, `position-patching-${p.component}`),
      figure: heatmap({
        title:
          p.component === "resid_pre"
            ? `Patching the residual stream per layer and position (${G})`
            : `Patching ${p.component} per layer and position (${G})`,
        rowLabels: p.grid.rowLabels,
        colLabels: p.grid.colLabels,
        values: p.grid.mean,
        rowTitle: p.component === "resid_pre" ? "residual stream before layer" : "layer",
        colTitle: "position",
        valueTitle: unit,
        scale: "diverging",
        domain: domainOf(p.component),
      }),
      caption: `Exact patching of ${p.component === "resid_pre" ? "the residual stream entering each layer (resid_pre; the last row is the stream leaving the last layer)" : p.component} at one layer and one position (${p.grid.n} prompts; position labels are ${g.positions?.labelsFrom}; one colour scale across the mechanism groups). Strongest: ${p.grid.rowLabels[c.r]} at the ${JSON.stringify(p.grid.colLabels[c.c])} position, ${cellText(p.grid, c.r, c.c)} (± one SE).`,
    });
  }
  return figures;
}

/** Where the final position's residual stream first carries the cue, and where attention hands it over. */
export interface HandOver {
  /** Layers (rows of the resid_pre grid) where a cue position carries it. */
  cueLayers: number[];
  /** Rows where the final position carries it. */
  finalLayers: number[];
  /** Layers whose attention output at the final position restores at least MATTERS. */
  attnFinal: number[];
  mlpFinal: number[];
}

export function handOver(g: GroupResult): HandOver | null {
  const resid = g.positionPatching?.find((p) => p.component === "resid_pre")?.grid;
  const pos = g.positions;
  if (!resid || !pos?.cue.length) return null;
  const carries = (l: number, p: number) => resid.mean[l][p] >= CARRIES && resid.ciLow[l][p] > 0;
  const layers = resid.rowLabels.map((_, l) => l);
  const atFinal = (component: string) => {
    const grid = g.positionPatching?.find((p) => p.component === component)?.grid;
    return grid
      ? grid.rowLabels.flatMap((_, l) =>
          grid.mean[l][pos.final] >= MATTERS && grid.ciLow[l][pos.final] > 0 ? [l] : [],
        )
      : [];
  };
  return {
    cueLayers: layers.filter((l) => pos.cue.some((p) => carries(l, p))),
    finalLayers: layers.filter((l) => carries(l, pos.final)),
    attnFinal: atFinal("attn_out"),
    mlpFinal: atFinal("mlp_out"),
  };
}

function groupFindings(g: GroupResult): Finding[] {
  const G = g.name;
  const out: Finding[] = [];
  const lp = g.layerPatching!;
  const matters = (r: number) =>
    lp.mean[r].flatMap((v, l) => (v >= MATTERS && lp.ciLow[r][l] > 0 ? [l] : []));
  out.push({
    groups: [G],
    text: `In ${G}, patching a whole layer output from the clean run restores at least ${pct(MATTERS)} of the gap (interval above 0) for the attention output of ${ranges(matters(1))} and the MLP output of ${ranges(matters(2))}.`,
    evidence: {
      group: G,
      [`groups[${G}].layerPatching.mean[attn_out, mlp_out]`]: JSON.stringify(
        lp.mean.slice(1).map((r) => r.map((v) => +v.toFixed(3))),
      ),
      threshold: MATTERS,
    },
  });
  const h = handOver(g);
  const resid = g.positionPatching?.find((p) => p.component === "resid_pre")?.grid;
  const attnGrid = g.positionPatching?.find((p) => p.component === "attn_out")?.grid;
  const pos = g.positions;
  if (!h || !resid || !pos) return out;
  const rl = resid.rowLabels;
  const { cueLayers, finalLayers, attnFinal, mlpFinal } = h;
  const cueText = pos.cue.map((p) => JSON.stringify(pos.labels[p])).join(" ");
  let story = "";
  if (cueLayers.length && finalLayers.length) {
    const lastCue = Math.max(...cueLayers);
    const firstFinal = Math.min(...finalLayers);
    story =
      firstFinal > lastCue
        ? ` In the residual stream the cue position carries it up to ${rl[lastCue]} and the final position from ${rl[firstFinal]}: the hand-over is between the two.`
        : ` Both carry it at ${ranges(
            cueLayers.filter((l) => finalLayers.includes(l)),
            rl,
          )}.`;
  }
  if (cueLayers.length && attnFinal.length && attnGrid) {
    // Only when the final position's residual does not carry it before that layer: then it arrives through attention.
    const k = attnFinal.find((l) => cueLayers.includes(l));
    if (k !== undefined) {
      const restores = formatMeanCi({
        mean: attnGrid.mean[k][pos.final],
        ciLow: attnGrid.ciLow[k][pos.final],
        ciHigh: attnGrid.ciHigh[k][pos.final],
      });
      // "Happens in Lk" only when the final position carries less than MATTERS entering every layer up to k.
      const before = rl
        .map((_, l) => l)
        .filter((l) => l <= k && resid.mean[l][pos.final] >= MATTERS && resid.ciLow[l][pos.final] > 0);
      story += before.length
        ? ` L${k}'s attention output at the final position restores ${restores} of the gap, but the final position already carries ${f2(resid.mean[before[0]][pos.final])} entering ${rl[before[0]]}: part of the hand-over from the cue happens before L${k}.`
        : ` The residual stream at the cue carries it into L${k}, and L${k}'s attention output at the final position restores ${restores} of the gap, while the final position carries less than ${pct(MATTERS)} entering any layer up to L${k}: the hand-over from the cue to the final position happens in L${k}'s attention.`;
    }
  }
  out.push({
    groups: [G],
    text: `In ${G}, patching the residual stream entering a layer (resid_pre) at one position restores at least ${pct(CARRIES)} of the gap (interval above 0) at a cue position (${cueText}) for ${ranges(cueLayers, rl)}, and at the final position (${JSON.stringify(pos.labels[pos.final])}) for ${ranges(finalLayers, rl)}. At the final position, patching the attention output restores at least ${pct(MATTERS)} at ${ranges(attnFinal)}, the MLP output at ${ranges(mlpFinal)}.${story}`,
    evidence: {
      group: G,
      [`groups[${G}].positionPatching[resid_pre], best cue position per layer`]: JSON.stringify(
        rl.map((_, l) => Math.max(...pos.cue.map((p) => +resid.mean[l][p].toFixed(3)))),
      ),
      [`groups[${G}].positionPatching[resid_pre], final position per layer`]: JSON.stringify(
        rl.map((_, l) => +resid.mean[l][pos.final].toFixed(3)),
      ),
      [`groups[${G}].positionPatching[attn_out], final position per layer`]: JSON.stringify(
        (attnGrid?.mean ?? []).map((row) => +row[pos.final].toFixed(3)),
      ),
      thresholds: `resid_pre ${CARRIES}, attn_out/mlp_out ${MATTERS}`,
    },
  });
  return out;
}
