/**
 * Neurons and head parts of the focus group: every neuron of the MLP layers that matter most (by exact
 * mlp_out patching) and every head's five parts are screened together by attribution patching (one forward
 * and backward per pair); the top ones are confirmed in one exact sweep. Two stages share that work.
 */
import { preCapNote } from "../../analysis/logit-attribution.ts";
import { formatMeanCi, mean as meanOf } from "../../analysis/stats.ts";
import { headName } from "../../model/component-names.ts";
import { neuronActivations, neuronPageData } from "../../neurons/neuron-page.ts";
import { neuronReport } from "../../neurons/neuron-report.ts";
import { HEAD_COMPONENTS, kvGroup, neuronSite, queryHeadPartSite } from "../../patching/targets.ts";
import { barChart } from "../../viz/charts/bar-chart.ts";
import { heatmap, sharedHeatmapDomain } from "../../viz/charts/heatmap.ts";
import { tokenView } from "../../viz/views/view-figures.ts";
import { groupOf, normalise, type PreparedGroup, type StudyContext } from "../context.ts";
import { argmaxAbs, excludesZero, f2, pct } from "../format.ts";
import { exactEffects } from "../pair-measures.ts";
import type { Finding, FocusResult, GroupResult, StudyNeuronPage, StudyResults } from "../results.ts";
import { allHeadPartSites, HEAD_PARTS } from "../sites.ts";
import type { NamedFigure, Stage, StageSlice, StudySection } from "../stage.ts";
import { summarizeGrid, summarizeSample, topIndices } from "../summaries.ts";
import { attentionToCue, CUE_ATTENTION } from "./attention.ts";
import { cellText, mechanismFigure, patchUnit } from "./patching.ts";

interface Candidates {
  neuronLayers: number[];
  neuronAttr: number[];
  topNeurons: { i: number; layer: number; neuron: number }[];
  headAttr: number[];
  chosenHeads: { i: number; layer: number; head: number }[];
  /** Exact effects, [site][prompt]: the top neurons, then each chosen head's five parts. */
  confirmed: number[][];
}

const memo = new WeakMap<StudyContext, Map<string, Promise<Candidates>>>();

/** The screen and its exact confirmation of one group, computed once for both stages. */
function candidates(ctx: StudyContext, res: StudyResults, g: PreparedGroup): Promise<Candidates> {
  let byGroup = memo.get(ctx);
  if (!byGroup) {
    byGroup = new Map();
    memo.set(ctx, byGroup);
  }
  let c = byGroup.get(g.name);
  if (!c) {
    c = screenAndConfirm(ctx, res, g);
    byGroup.set(g.name, c);
  }
  return c;
}

/** Neurons are screened in the focus group only; head parts in every mechanism group. */
async function screenAndConfirm(ctx: StudyContext, res: StudyResults, g: PreparedGroup): Promise<Candidates> {
  const { nLayers: L, nHeads: H, dMlp } = ctx.model.cfg;
  const gr = groupOf(res, g.name);
  const fd = g.tokens;
  const neuronLayers = g === ctx.focus ? topIndices(gr.layerPatching!.mean[2], ctx.plan.neuronLayers) : [];
  const screens = await ctx.screen(fd, [
    ...neuronLayers.map((layer) => ({ kind: "neurons" as const, layer })),
    { kind: "sites" as const, sites: allHeadPartSites(ctx.model.cfg) },
  ]);
  const neuronAttr = neuronLayers.flatMap((_, li) => screens[li].map((v) => normalise(gr, meanOf(v))));
  const topNeurons = topIndices(neuronAttr, ctx.plan.exactNeurons).map((i) => ({
    i,
    layer: neuronLayers[Math.floor(i / dMlp)],
    neuron: i % dMlp,
  }));
  // Head-part sites are [component, layer, head].
  const headAttr = screens[neuronLayers.length].map((v) => normalise(gr, meanOf(v)));
  const headScore = Array.from({ length: L * H }, (_, i) =>
    Math.max(...HEAD_COMPONENTS.map((_, ci) => Math.abs(headAttr[ci * L * H + i]))),
  );
  const chosenHeads = topIndices(headScore, ctx.plan.exactHeads).map((i) => ({
    i,
    layer: Math.floor(i / H),
    head: i % H,
  }));
  const confirmed = await exactEffects(
    ctx.model,
    fd,
    {
      kind: "sites",
      sites: [
        ...topNeurons.map((t) => neuronSite({ layer: t.layer, neuron: t.neuron })),
        ...chosenHeads.flatMap((h) =>
          HEAD_COMPONENTS.map((component) =>
            queryHeadPartSite(ctx.model.cfg, { layer: h.layer, head: h.head, component }),
          ),
        ),
      ],
    },
    ctx.work(fd.clean.length),
  );
  return { neuronLayers, neuronAttr, topNeurons, headAttr, chosenHeads, confirmed };
}

const mechanismReady = (ctx: StudyContext, res: StudyResults, g: PreparedGroup) =>
  ctx.mechanismGroups(res).includes(g) && groupOf(res, g.name).layerPatching !== undefined;

type NeuronSlice = StageSlice & { focus: Pick<FocusResult, "neurons" | "neuronPages"> };

export const neuronStage: Stage<NeuronSlice> = {
  name: "neuron screen and confirmation",
  async run(ctx, res) {
    if (!mechanismReady(ctx, res, ctx.focus)) return { focus: {} };
    const fg = groupOf(res, ctx.focus.name);
    const c = await candidates(ctx, res, ctx.focus);
    const neurons: FocusResult["neurons"] = {
      layers: c.neuronLayers,
      top: c.topNeurons.map((t, k) => ({
        label: `L${t.layer}N${t.neuron}`,
        layer: t.layer,
        neuron: t.neuron,
        attribution: c.neuronAttr[t.i],
        exact: summarizeSample(
          c.confirmed[k].map((v) => normalise(fg, v)),
          ctx.boot(9200 + k),
        ),
      })),
    };
    // Neuron pages of the top confirmed neurons: direct logit effect, activations on the example prompts,
    // corpus examples from a neuron index when one was given.
    const index = ctx.neuronIndex;
    const examples = ctx.focus.pairs.slice(0, ctx.plan.attentionExamples);
    const neuronPages = [...neurons.top]
      .sort((a, b) => Math.abs(b.exact.mean) - Math.abs(a.exact.mean))
      .slice(0, ctx.plan.neuronPages)
      .map((n): StudyNeuronPage => {
        const indexed = index?.layers.includes(n.layer) ? index : null;
        if (index && !indexed)
          ctx.omitted.push(
            `corpus examples of ${n.label}: the neuron index ${index.dir} has no layer ${n.layer}`,
          );
        const page = neuronPageData(ctx.model, n.layer, n.neuron, {
          index: indexed,
          logitTokens: 8,
          modelName: ctx.modelName,
        });
        const acts = neuronActivations(
          ctx.model,
          n.layer,
          n.neuron,
          examples.map((p) => p.cleanTokens),
        );
        return {
          label: n.label,
          exactFraction: n.exact.mean,
          page,
          prompts: examples.map((p, i) => ({
            prompt: p.clean,
            tokens: ctx.model.toStrTokens(p.cleanTokens),
            activations: acts[i],
          })),
        };
      });
    if (!index) ctx.omitted.push("corpus examples of the top neurons: no --neuron-index DIR was given");
    return { focus: { neurons, neuronPages } };
  },
  sections(res) {
    const F = res.focusGroup;
    const n = res.focus.neurons;
    if (!n?.top.length) return [];
    const unit = patchUnit(groupOf(res, F));
    // Screened by the estimate, drawn and named by the exact effect: the bars are what was measured exactly.
    const nt = [...n.top].sort((a, b) => Math.abs(b.exact.mean) - Math.abs(a.exact.mean));
    const byEstimate = new Map(
      [...n.top]
        .sort((a, b) => Math.abs(b.attribution) - Math.abs(a.attribution))
        .map((x, i) => [x.label, i + 1]),
    );
    const out: StudySection[] = [
      {
        heading: `MLP neurons (${F})`,
        figures: [
          {
            name: "focus-neurons",
            figure: barChart({
              title: `Neurons of MLP layer(s) ${n.layers.map((l) => `L${l}`).join(", ")} by exact patching (${F})`,
              labels: nt.map((x) => x.label),
              values: nt.map((x) => x.exact.mean),
              errors: { lower: nt.map((x) => x.exact.ciLow), upper: nt.map((x) => x.exact.ciHigh) },
              horizontal: true,
              labelTitle: "neuron (sorted by |exact|)",
              valueTitle: `${unit} (exact)`,
            }),
            caption: `Every neuron of the MLP layer(s) where patching the MLP output matters most was screened by attribution patching; the ${nt.length} with the largest estimates were patched exactly (all positions, 95% bootstrap intervals) and are sorted here by the exact effect. Largest by exact patching: ${nt
              .slice(0, 3)
              .map(
                (x) =>
                  `${x.label} ${formatMeanCi(x.exact)} (estimate ${f2(x.attribution)}, rank ${byEstimate.get(x.label)} by estimate)`,
              )
              .join(", ")}; every neuron's exact value and estimate are in the table below.`,
          },
        ],
        tables: [
          {
            caption: `The ${nt.length} confirmed neurons: exact patching (${unit}) beside the attribution estimate that chose them.`,
            columns: ["neuron", "exact [95% interval]", "estimate", "rank by |exact|", "rank by |estimate|"],
            rows: nt.map((x, i) => [
              x.label,
              formatMeanCi(x.exact),
              f2(x.attribution),
              String(i + 1),
              String(byEstimate.get(x.label)),
            ]),
          },
        ],
      },
    ];
    if (res.focus.neuronPages?.length) {
      out.push({
        heading: `The top neurons' pages (${F})`,
        text: "Neuron pages (as `circuitscope neuron` draws them) of the confirmed neurons with the largest exact patching effect: the tokens each one's output pushes up and down directly, its activation on the study's example prompts and, when a neuron index was given (--neuron-index), the corpus texts where it fires most.",
        figures: res.focus.neuronPages.flatMap(neuronFigures),
      });
    }
    return out;
  },
  findings(res) {
    const nt = res.focus.neurons?.top ?? [];
    const fg = groupOf(res, res.focusGroup);
    const clearAll = [...nt]
      .filter((n) => Math.abs(n.exact.mean) >= NEURON_MATTERS && (n.exact.ciLow > 0 || n.exact.ciHigh < 0))
      .sort((x, y) => Math.abs(y.exact.mean) - Math.abs(x.exact.mean));
    const clear = clearAll.slice(0, NEURONS_LISTED);
    if (!nt.length || !fg.normalised) return [];
    const pages = new Map((res.focus.neuronPages ?? []).map((p) => [p.label, p]));
    return [
      {
        text: clear.length
          ? `Single MLP neurons whose exact patching changes the logit difference by at least ${pct(NEURON_MATTERS)} of the gap either way (interval excluding 0): ${clearAll.length} of the ${nt.length} confirmed; the largest ${clear.length}: ${clear
              .map((n) => {
                const page = pages.get(n.label);
                const raises = page ? `; its output raises ${tokenList(page.page.logitEffect.top)}` : "";
                return `${n.label} ${formatMeanCi(n.exact)}${raises}`;
              })
              .join("; ")}.`
          : `No single screened neuron changes the logit difference by at least ${pct(NEURON_MATTERS)} of the gap with an interval excluding 0 (top: ${nt[0].label} ${formatMeanCi(nt[0].exact)}).`,
        evidence: Object.fromEntries([
          ...nt.map((n) => [
            `focus.neurons.top[${n.label}].exact`,
            `${n.exact.mean} [${n.exact.ciLow}, ${n.exact.ciHigh}]`,
          ]),
          ["threshold", NEURON_MATTERS],
        ]),
      },
    ];
  },
};

type HeadSlice = StageSlice & { groups: Map<string, Pick<GroupResult, "headSplit">> };

export const headPartsStage: Stage<HeadSlice> = {
  name: "head parts z/q/k/v/pattern",
  async run(ctx, res) {
    const { nLayers: L, nHeads: H } = ctx.model.cfg;
    const groups: HeadSlice["groups"] = new Map();
    for (const g of ctx.mechanismGroups(res)) {
      if (!mechanismReady(ctx, res, g)) continue;
      const gr = groupOf(res, g.name);
      const c = await candidates(ctx, res, g);
      const nN = c.topNeurons.length;
      const split = (k: number, ci: number) => c.confirmed[nN + k * HEAD_COMPONENTS.length + ci];
      const heads = c.chosenHeads.map((h) => headName(h.layer, h.head));
      groups.set(g.name, {
        headSplit: {
          heads,
          parts: [...HEAD_PARTS],
          exact: summarizeGrid(
            heads,
            [...HEAD_PARTS],
            g.tokens.clean.map((_, b) =>
              c.chosenHeads.map((_, k) => HEAD_PARTS.map((_, ci) => normalise(gr, split(k, ci)[b]))),
            ),
            ctx.boot(100 * g.index + 9300),
          ),
          attribution: c.chosenHeads.map((h) => HEAD_PARTS.map((_, ci) => c.headAttr[ci * L * H + h.i])),
          toCue: attentionToCue(ctx, g, c.chosenHeads, 100 * g.index + 9500),
        },
      });
    }
    return { groups };
  },
  sections(res) {
    const measured = res.groups.filter((g) => g.headSplit);
    const domain = sharedHeatmapDomain(
      measured.map((g) => ({ values: g.headSplit!.exact.mean, scale: "diverging" as const })),
    );
    return measured.map((g) => {
      const hs = g.headSplit!;
      const b = argmaxAbs(hs.exact);
      return {
        heading: `Heads: output, query, key, value or pattern (${g.name})`,
        figures: [
          {
            name: mechanismFigure(res, g.name, "head-split"),
            figure: heatmap({
              title: `Head patching by what is patched (${g.name})`,
              rowLabels: hs.heads,
              colLabels: hs.parts,
              values: hs.exact.mean,
              rowTitle: "head",
              colTitle: "patched part",
              valueTitle: patchUnit(g),
              scale: "diverging",
              domain,
            }),
            caption: `Exact patching of each head's output (z), query, key, value or attention pattern at all positions, for the ${hs.heads.length} heads with the largest attribution estimates (${hs.exact.n} prompts; one colour scale across the mechanism groups). Strongest: ${hs.heads[b.r]} ${hs.parts[b.c]}, ${cellText(hs.exact, b.r, b.c)} (± one SE). Attention from the final position to the cue: ${hs.heads.map((h, k) => `${h} ${formatMeanCi(hs.toCue[k])}`).join("; ")}.`,
          },
        ],
      };
    });
  },
  findings(res) {
    return res.groups.filter((g) => g.headSplit && g.normalised).flatMap((g) => headFindings(g, res));
  },
};

/** The heads whose output patching matters in a group, with value vs pattern and attention to the cue. */
export function headsThatMatter(g: GroupResult) {
  const hs = g.headSplit;
  if (!hs) return [];
  const cell = (k: number, part: string) => {
    const j = hs.parts.indexOf(part);
    return { mean: hs.exact.mean[k][j], ciLow: hs.exact.ciLow[k][j], ciHigh: hs.exact.ciHigh[k][j] };
  };
  return hs.heads
    .flatMap((h, k) => {
      const z = cell(k, "output");
      return Math.abs(z.mean) >= HEAD_MATTERS && excludesZero(z)
        ? [{ head: h, output: z, value: cell(k, "value"), pattern: cell(k, "pattern"), toCue: hs.toCue[k] }]
        : [];
    })
    .sort((a, b) => Math.abs(b.output.mean) - Math.abs(a.output.mean));
}

function headFindings(g: GroupResult, res: StudyResults): Finding[] {
  const heads = headsThatMatter(g);
  if (!heads.length) {
    return [
      {
        groups: [g.name],
        text: `In ${g.name}, no single head's output restores at least ${pct(HEAD_MATTERS)} of the gap with an interval excluding 0.`,
        evidence: { group: g.name, threshold: HEAD_MATTERS },
      },
    ];
  }
  return heads.map(({ head: h, output: z, value: v, pattern: p, toCue }) => {
    const shared = sharedKv(h, res);
    const which =
      excludesZero(v) && Math.abs(v.mean) >= 2 * Math.abs(p.mean)
        ? `${shared ? "the value of its key/value head" : "its value"} carries it (value at least twice the pattern)`
        : excludesZero(p) && Math.abs(p.mean) >= 2 * Math.abs(v.mean)
          ? "its pattern carries it (pattern at least twice the value)"
          : "neither value nor pattern alone is at least twice the other";
    const moves =
      toCue.ciLow >= CUE_ATTENTION
        ? `it attends ${formatMeanCi(toCue)} from the final position to the cue (interval at or above ${CUE_ATTENTION})`
        : `its attention from the final position to the cue is ${formatMeanCi(toCue)} (not at or above ${CUE_ATTENTION})`;
    return {
      groups: [g.name],
      text: `In ${g.name}, patching ${h}'s output restores ${formatMeanCi(z)} of the gap; its value${shared} ${formatMeanCi(v)}, its pattern ${formatMeanCi(p)}: ${which}; ${moves}.`,
      evidence: {
        group: g.name,
        [`groups[${g.name}].headSplit[${h}].output`]: z.mean,
        value: v.mean,
        pattern: p.mean,
        toCue: toCue.mean,
        threshold: HEAD_MATTERS,
        rule: "value/pattern: interval excludes 0 and |one| >= 2|other|",
      },
    };
  });
}

/** Thresholds of the summary: a neuron or a head "matters" when patching it restores at least this fraction. */
export const NEURON_MATTERS = 0.05;
export const HEAD_MATTERS = 0.1;
/** Neurons named in the summary (the rest are in results.json). */
const NEURONS_LISTED = 5;

/** With grouped-query attention, the query heads whose key/value a head's value patch also changes. */
function sharedKv(label: string, res: StudyResults): string {
  const cfg = res.meta.modelConfig as { nHeads: number; nKvHeads?: number };
  const [, l, h] = /L(\d+)H(\d+)/.exec(label)!.map(Number);
  const others = kvGroup({ nHeads: cfg.nHeads, nKvHeads: cfg.nKvHeads ?? cfg.nHeads }, h).filter(
    (x) => x !== h,
  );
  if (others.length === 0) return "";
  return ` (its key/value head's, shared with ${others.map((x) => headName(l, x)).join(", ")})`;
}

const tokenList = (ts: readonly { str: string; value: number }[]) =>
  ts
    .slice(0, 3)
    .map((t) => `${JSON.stringify(t.str)} ${f2(t.value)}`)
    .join(", ");

/** One neuron's figures: the neuron page's own charts (src/neurons) and its activation on the example prompts. */
function neuronFigures(np: StudyNeuronPage): NamedFigure[] {
  const { page } = np;
  const name = `neuron-${np.label}`;
  const out: NamedFigure[] = [];
  const preCap = preCapNote(page.finalSoftCap, "logit effects");
  // Captions per neuron-page section, from the page's numbers.
  const captions: Record<string, (i: number) => { suffix: string; caption: string }> = {
    "Top activating examples": () => ({
      suffix: "corpus-examples",
      caption: `${np.label} on ${page.index?.corpus}: the ${page.index?.examples.length} contexts where it fires most; top activation ${f2(page.index?.examples[0]?.value ?? Number.NaN)}.`,
    }),
    "Activation distribution": () => ({
      suffix: "histogram",
      caption: `${np.label}: activations over ${page.index?.tokens} indexed tokens; density (activation > 0) ${(100 * (page.index?.density ?? 0)).toFixed(2)}%.`,
    }),
    "Direct effect on the logits": (i) =>
      i === 0
        ? {
            suffix: "promoted",
            caption: `${np.label} (exact patching ${pct(np.exactFraction)} of the gap): the tokens its output raises most per unit of activation (W_out[n] @ W_U): ${tokenList(page.logitEffect.top)}.${preCap}`,
          }
        : {
            suffix: "suppressed",
            caption: `${np.label}: the tokens its output lowers most: ${tokenList(page.logitEffect.bottom)}.${preCap}`,
          },
  };
  for (const section of neuronReport(page).sections) {
    const describe = captions[section.heading];
    if (!describe) continue;
    for (const [i, f] of section.figures.entries()) {
      const { suffix, caption } = describe(i);
      out.push({ name: `${name}-${suffix}`, figure: f.figure, caption });
    }
  }
  if (np.prompts.length) {
    let best = { v: Number.NEGATIVE_INFINITY, token: "", prompt: 0 };
    for (const [pi, p] of np.prompts.entries())
      for (const [i, v] of p.activations.entries())
        if (v > best.v) best = { v, token: p.tokens[i], prompt: pi };
    out.push({
      name: `${name}-prompts`,
      figure: tokenView({
        title: `${np.label} on the study's example prompts`,
        valueLabel: `${np.label} activation`,
        samples: np.prompts.map((p) => ({ label: p.prompt, tokens: p.tokens, values: p.activations })),
      }),
      caption: `${np.label}'s activation at every token of ${np.prompts.length} example prompt(s); highest ${f2(best.v)} at ${JSON.stringify(best.token)} of example ${best.prompt + 1}.`,
    });
  }
  return out;
}
