/**
 * Layer screen: every group's attn/MLP outputs per layer estimated by attribution patching, then each
 * group's top candidates (and the focus group's) confirmed by exact patching.
 */
import { mean as meanOf } from "../../analysis/stats.ts";
import { heatmap } from "../../viz/charts/heatmap.ts";
import { groupOf, normalise, type StudyContext } from "../context.ts";
import { pct } from "../format.ts";
import { exactEffects } from "../pair-measures.ts";
import type { ComponentPatch, GroupResult } from "../results.ts";
import type { LayerComponent } from "../sites.ts";
import type { Stage, StageSlice } from "../stage.ts";
import { summarizeGrid, summarizeSample, topCells } from "../summaries.ts";
import { MIN_GAP } from "./behaviour.ts";

type Slice = StageSlice & { groups: Map<string, Pick<GroupResult, "layerScreen" | "layerExact">> };

function topComponents(ctx: StudyContext, screen: GroupResult["layerScreen"]): LayerComponent[] {
  return topCells(
    screen!,
    ctx.plan.exactComponentsPerGroup,
    (r, c) => `L${c} ${r === 0 ? "attn" : "mlp"}`,
  ).map((cell) => ctx.comps.find((c) => c.row === cell.row && c.col === cell.col)!);
}

export const layerScreenStage: Stage<Slice> = {
  name: "layer screen and confirmation",
  async run(ctx, res) {
    const L = ctx.model.cfg.nLayers;
    const groups: Slice["groups"] = new Map();
    const analysed = ctx.analysed(res);
    for (const g of analysed) {
      const r = groupOf(res, g.name);
      const raw = await ctx.layerScreenRaw(g);
      const perPrompt = g.tokens.clean.map((_, b) =>
        [0, 1].map((row) =>
          ctx.comps.filter((c) => c.row === row).map((c) => normalise(r, raw[ctx.comps.indexOf(c)][b])),
        ),
      );
      groups.set(g.name, {
        layerScreen: summarizeGrid(
          ["attn", "mlp"],
          Array.from({ length: L }, (_, l) => `L${l}`),
          perPrompt,
          ctx.boot(100 * g.index + 5),
        ),
      });
    }
    const focusScreen = groups.get(ctx.focus.name)?.layerScreen;
    const focusTop = focusScreen ? topComponents(ctx, focusScreen) : [];
    for (const g of analysed) {
      const r = groupOf(res, g.name);
      const raw = await ctx.layerScreenRaw(g);
      const entry = groups.get(g.name) as Slice["groups"] extends Map<string, infer E> ? E : never;
      const chosen = [...new Set([...focusTop, ...topComponents(ctx, entry.layerScreen)])];
      // One sweep for all of them: the clean and corrupted runs are shared by every patched site.
      const exact = await exactEffects(
        ctx.model,
        g.tokens,
        { kind: "sites", sites: chosen.map((c) => c.site) },
        ctx.work(g.tokens.clean.length),
      );
      entry.layerExact = chosen.map((c, i): ComponentPatch => {
        const s = summarizeSample(exact[i], ctx.boot(100 * g.index + 10 + i));
        return {
          label: c.label,
          exact: s,
          exactFraction: normalise(r, s.mean),
          attribution: normalise(r, meanOf(raw[ctx.comps.indexOf(c)])),
        };
      });
    }
    return { groups };
  },
  sections(res) {
    const withExact = res.groups.filter((g) => g.layerExact?.length && g.normalised);
    const flat = res.groups.filter((g) => g.layerExact?.length && !g.normalised);
    if (!withExact.length && !flat.length) return [];
    const inLayerOrder = (a: string, b: string) => {
      const [la, ka] = a.slice(1).split(" ");
      const [lb, kb] = b.slice(1).split(" ");
      return Number(la) - Number(lb) || ka.localeCompare(kb);
    };
    const union = [...new Set(withExact.flatMap((g) => g.layerExact!.map((c) => c.label)))].sort(
      inLayerOrder,
    );
    const top = (g: GroupResult) =>
      [...g.layerExact!].sort((a, b) => Math.abs(b.exactFraction) - Math.abs(a.exactFraction))[0];
    return [
      {
        heading: "Layer outputs in every group: screened, then confirmed",
        text: flat.length
          ? `No effect to restore (gap interval includes 0, or below ${MIN_GAP} logits), so not shown as fractions: ${flat.map((g) => `${g.name} (largest raw change ${top(g).label} ${top(g).exactFraction.toFixed(2)} logits)`).join("; ")}. Their raw values are in results.json.`
          : undefined,
        figures: withExact.length
          ? [
              {
                name: "groups-top-layers",
                figure: heatmap({
                  title: "Exact patching of the screened top layer outputs, every group",
                  rowLabels: withExact.map((g) => g.name),
                  colLabels: union,
                  values: withExact.map((g) =>
                    union.map((u) => g.layerExact!.find((c) => c.label === u)?.exactFraction ?? null),
                  ),
                  rowTitle: "group",
                  colTitle: "component",
                  valueTitle: "fraction restored",
                }),
                caption: `Attention/MLP outputs per layer were screened by attribution patching in each group; each group's top candidates and the focus group's were confirmed by exact patching (empty cells: not confirmed in that group). Only groups with an effect to restore are drawn. Top confirmed component per group: ${withExact
                  .map((g) => `${g.name} ${top(g).label} ${pct(top(g).exactFraction)}`)
                  .join("; ")}.`,
              },
            ]
          : [],
      },
    ];
  },
};
