/**
 * Study results → report sections: each figure with a caption whose numbers are read from the results
 * (never written in advance). `name` is the figure's SVG file name.
 */
import { formatMeanCi, formatMeanSe } from "../../analysis/stats.ts";
import { neuronReport } from "../../neurons/neuron-report.ts";
import { barChart } from "../../viz/charts/bar-chart.ts";
import { heatmap } from "../../viz/charts/heatmap.ts";
import { lineChart } from "../../viz/charts/line-chart.ts";
import { scatterChart } from "../../viz/charts/scatter-chart.ts";
import type { Figure } from "../../viz/figure.ts";
import type { ReportSection } from "../../viz/html/report.ts";
import { attentionView, tokenView } from "../../viz/views/view-figures.ts";
import type { StudyNeuronPage, StudyResults } from "./results.ts";
import type { GridSummary } from "./summaries.ts";

export interface NamedFigure {
  name: string;
  figure: Figure;
  caption: string;
}

export interface StudySection {
  heading: string;
  text?: string;
  figures: NamedFigure[];
}

const f2 = (x: number) => x.toFixed(2);
const pct = (x: number) => `${(100 * x).toFixed(0)}%`;

function argmaxAbs(grid: GridSummary): { r: number; c: number } {
  let best = { r: 0, c: 0 };
  for (const [r, row] of grid.mean.entries()) {
    for (const [c, v] of row.entries()) {
      if (Math.abs(v) > Math.abs(grid.mean[best.r][best.c])) best = { r, c };
    }
  }
  return best;
}

function cellText(grid: GridSummary, r: number, c: number): string {
  return formatMeanSe({ mean: grid.mean[r][c], se: grid.se[r][c] });
}

function pFmt(p: number): string {
  return p < 0.001 ? p.toExponential(1) : p.toFixed(3);
}

export function buildSections(res: StudyResults): StudySection[] {
  const sections: StudySection[] = [];
  const focus = res.focus;
  const F = res.focusGroup;
  const m = res.meta;

  // ---- overview -------------------------------------------------------------------------------------
  const groupLines = res.prompts.groups.map(
    (g) => `${g.name}: ${g.kept} prompts${g.dropped ? ` (${g.dropped} dropped)` : ""}`,
  );
  const dropReasons = new Map<string, number>();
  for (const d of res.prompts.dropped) dropReasons.set(d.reason, (dropReasons.get(d.reason) ?? 0) + 1);
  sections.push({
    heading: "Setup",
    text: [
      `Model ${m.model} (${m.modelConfig.nLayers} layers, ${m.modelConfig.nHeads} heads, d_model ${m.modelConfig.dModel}), backend ${m.backend}, seed ${m.seed}${m.quick ? ", quick mode" : ""}; circuitscope ${m.version}, Node ${m.node}; run ${m.startedAt}, ${m.runSeconds.toFixed(0)} s.`,
      ...(m.stageSeconds
        ? [
            `Time per phase: ${Object.entries(m.stageSeconds)
              .map(([k, v]) => `${k} ${v.toFixed(1)} s`)
              .join("; ")}.`,
          ]
        : []),
      `Prompts from ${res.prompts.source}. Each clean prompt uses a contraction early ("We're helping our friend while they"); its corrupted twin uses the full form ("We are ..."), same token length. The answer is the contraction fitting the final pronoun ('re / 's), the wrong token the full verb (" are" / " is"). The metric is logit(answer) - logit(wrong) at the final position.`,
      `Groups (earlier contraction / final pronoun): ${groupLines.join("; ")}.`,
      res.prompts.dropped.length
        ? `Dropped pairs: ${[...dropReasons].map(([r, n]) => `${n} × ${r}`).join("; ")}.`
        : "No prompt pair was dropped by validation (single-token answers, equal lengths, final token is the pronoun).",
      `Statistics: ${m.statsMethod}`,
      `Exact vs estimated numbers: ${Object.entries(m.provenance)
        .map(([k, v]) => `${k}: ${v}`)
        .join("; ")}.`,
      ...(m.omitted.length ? [`Left out: ${m.omitted.join("; ")}.`] : []),
    ].join("\n\n"),
    figures: [],
  });

  // ---- behaviour ------------------------------------------------------------------------------------
  const gs = res.groups;
  const best = [...gs].sort((a, b) => b.contractionEffect.mean - a.contractionEffect.mean)[0];
  const fg = gs.find((g) => g.name === F)!;
  sections.push({
    heading: "Behaviour: does an earlier contraction make the model contract?",
    figures: [
      {
        name: "behaviour-logit-diff",
        figure: lineChart({
          title: "Logit difference (answer - wrong) per group",
          x: gs.map((g) => g.name),
          series: [
            {
              name: "clean (contraction earlier)",
              values: gs.map((g) => g.cleanLogitDiff.mean),
              lower: gs.map((g) => g.cleanLogitDiff.ciLow),
              upper: gs.map((g) => g.cleanLogitDiff.ciHigh),
            },
            {
              name: "corrupted (full form earlier)",
              values: gs.map((g) => g.corruptedLogitDiff.mean),
              lower: gs.map((g) => g.corruptedLogitDiff.ciLow),
              upper: gs.map((g) => g.corruptedLogitDiff.ciHigh),
            },
          ],
          xTitle: "group (earlier contraction / final pronoun)",
          yTitle: "logit diff",
        }),
        caption: `Mean logit difference per group with 95% bootstrap intervals. Focus group ${F}: clean ${formatMeanSe(fg.cleanLogitDiff)}, corrupted ${formatMeanSe(fg.corruptedLogitDiff)}, effect of the earlier contraction ${formatMeanCi(fg.contractionEffect)}. Largest effect: ${best.name}, ${formatMeanCi(best.contractionEffect)}.`,
      },
    ],
  });

  // ---- experiment 1 -----------------------------------------------------------------------------------
  const exp1: NamedFigure[] = [];
  if (focus.accumulated && focus.decomposed) {
    const acc = focus.accumulated;
    const last = acc.mean.length - 1;
    const jumps = acc.mean.slice(1).map((v, i) => v - acc.mean[i]);
    const j = jumps.indexOf(Math.max(...jumps));
    exp1.push({
      name: "focus-accumulated-residual",
      figure: lineChart({
        title: `Logit difference read from the residual stream (${F})`,
        x: acc.labels,
        series: [{ name: F, values: acc.mean, lower: acc.ciLow, upper: acc.ciHigh }],
        yTitle: "logit diff",
      }),
      caption: `Accumulated residual stream after each half-layer, through the final LayerNorm (cached scale), mean over ${acc.n} prompts with 95% intervals. Final value ${f2(acc.mean[last])} ± ${f2(acc.se[last])}; the largest rise is from ${acc.labels[j]} to ${acc.labels[j + 1]} (+${f2(jumps[j])}).`,
    });
    const dec = focus.decomposed;
    const top = [...dec.mean.keys()].sort((a, b) => Math.abs(dec.mean[b]) - Math.abs(dec.mean[a]));
    exp1.push({
      name: "focus-decomposed-residual",
      figure: barChart({
        title: `Logit difference written by each component (${F})`,
        labels: dec.labels,
        values: dec.mean,
        errors: { lower: dec.ciLow, upper: dec.ciHigh },
        valueTitle: "logit diff",
      }),
      caption: `Direct contribution of each component's output to the final logit difference. Largest: ${top
        .slice(0, 3)
        .map((i) => `${dec.labels[i]} ${formatMeanSe({ mean: dec.mean[i], se: dec.se[i] })}`)
        .join(", ")}.`,
    });
  }
  if (focus.headDla && focus.topHeads) {
    const th = focus.topHeads;
    exp1.push({
      name: "focus-head-dla",
      figure: heatmap({
        title: `Direct logit attribution per head (${F})`,
        rowLabels: focus.headDla.rowLabels,
        colLabels: focus.headDla.colLabels,
        values: focus.headDla.mean,
        rowTitle: "layer",
        colTitle: "head",
        valueTitle: "logit diff",
      }),
      caption: `Each head's output (z·W_O at the final position, through the final LayerNorm) projected on the answer - wrong direction, mean over ${focus.headDla.n} prompts. Top head by direct logit attribution: ${th[0].label}, ${formatMeanSe(th[0])}.`,
    });
    exp1.push({
      name: "focus-top-heads",
      figure: barChart({
        title: `Top heads by |direct logit attribution| (${F})`,
        labels: th.map((c) => c.label),
        values: th.map((c) => c.mean),
        errors: { lower: th.map((c) => c.ciLow), upper: th.map((c) => c.ciHigh) },
        valueTitle: "logit diff",
      }),
      caption: `Top ${th.length} heads with 95% intervals: ${th.map((c) => `${c.label} ${formatMeanSe(c)}`).join(", ")}.`,
    });
  }
  for (const [i, ex] of (focus.attention ?? []).entries()) {
    if (ex.heads.length === 0) continue;
    exp1.push({
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
          return `${h.label} attends most to ${JSON.stringify(ex.tokens[k])} (${pct(row[k])})`;
        })
        .join("; ")}.`,
    });
  }
  if (focus.layerPatching) {
    const lp = focus.layerPatching;
    const b = argmaxAbs(lp);
    exp1.push({
      name: "focus-layer-patching",
      figure: heatmap({
        title: `Activation patching per layer, clean → corrupted (${F})`,
        rowLabels: lp.rowLabels,
        colLabels: lp.colLabels,
        values: lp.mean,
        colTitle: "layer",
        valueTitle: "fraction restored",
      }),
      caption: `Exact patching of each layer's residual input, attention output and MLP output at all positions; 1 = the clean logit difference restored. Strongest: ${lp.rowLabels[b.r]} at ${lp.colLabels[b.c]}, ${cellText(lp, b.r, b.c)}.`,
    });
  }
  for (const pp of focus.positionPatching ?? []) {
    const b = argmaxAbs(pp.grid);
    exp1.push({
      name: `focus-position-patching-${pp.component}`,
      figure: heatmap({
        title: `Patching ${pp.component} per layer and position (${F})`,
        rowLabels: pp.grid.rowLabels,
        colLabels: pp.grid.colLabels,
        values: pp.grid.mean,
        rowTitle: "layer",
        colTitle: "position",
        valueTitle: "fraction restored",
      }),
      caption: `Exact patching of ${pp.component} at one layer and one position (${pp.grid.n} prompts). Strongest: ${pp.grid.rowLabels[b.r]} at the ${pp.grid.colLabels[b.c]} position, ${cellText(pp.grid, b.r, b.c)}.`,
    });
  }
  if (focus.neurons?.top.length) {
    const nt = focus.neurons.top;
    exp1.push({
      name: "focus-neurons",
      figure: barChart({
        title: `Top neurons of MLP layer(s) ${focus.neurons.layers.map((l) => `L${l}`).join(", ")} (${F})`,
        labels: nt.map((n) => n.label),
        values: nt.map((n) => n.exact.mean),
        errors: { lower: nt.map((n) => n.exact.ciLow), upper: nt.map((n) => n.exact.ciHigh) },
        horizontal: true,
        valueTitle: "fraction restored (exact)",
      }),
      caption: `Every neuron of the MLP layer(s) where patching the MLP output matters most was screened by attribution patching; the top ${nt.length} were patched exactly (all positions). Top: ${nt
        .slice(0, 3)
        .map((n) => `${n.label} exact ${formatMeanSe(n.exact)} (estimate ${f2(n.attribution)})`)
        .join(
          ", ",
        )}. Neuron pages: "circuitscope neuron --layer L --neuron N" and the section below (see docs/study-walkthrough.md).`,
    });
  }
  if (focus.headSplit) {
    const hs = focus.headSplit;
    const b = argmaxAbs(hs.exact);
    exp1.push({
      name: "focus-head-split",
      figure: heatmap({
        title: `Head patching by what is patched (${F})`,
        rowLabels: hs.heads,
        colLabels: hs.parts,
        values: hs.exact.mean,
        rowTitle: "head",
        valueTitle: "fraction restored",
      }),
      caption: `Exact patching of each head's output (z), query, key, value or attention pattern at all positions, for the ${hs.heads.length} heads with the largest attribution estimates. Strongest: ${hs.heads[b.r]} ${hs.parts[b.c]}, ${cellText(hs.exact, b.r, b.c)}.`,
    });
  }
  if (focus.attributionVsExact) {
    const av = focus.attributionVsExact;
    exp1.push({
      name: "focus-attribution-vs-exact",
      figure: scatterChart({
        title: `Attribution patching vs exact patching (${F})`,
        points: av.points.map((p) => ({ x: p.exact, y: p.attribution, label: p.label, group: p.kind })),
        xTitle: "exact (fraction restored)",
        yTitle: "attribution estimate",
        identityLine: true,
      }),
      caption: `Every component measured both ways (${av.points.length} points: layer outputs, head parts, neurons). Pearson r = ${f2(av.r)}, slope of the estimate on the exact value ${f2(av.slope)}; points off the diagonal are where the first-order estimate fails.`,
    });
  }
  sections.push({ heading: `Experiment 1: ${F} in depth`, figures: exp1 });
  if (focus.neuronPages?.length) {
    sections.push({
      heading: `Experiment 1: the top neurons (${F})`,
      text: "Neuron pages (as `circuitscope neuron` draws them) of the confirmed neurons with the largest exact patching effect: the tokens each one's output pushes up and down directly, its activation on the study's example prompts and, when a neuron index was given (--neuron-index), the corpus texts where it fires most.",
      figures: focus.neuronPages.flatMap(neuronFigures),
    });
  }

  // ---- experiment 2 -----------------------------------------------------------------------------------
  const exp2: NamedFigure[] = [];
  const withAcc = gs.filter((g) => g.accumulated);
  if (withAcc.length) {
    const labels = withAcc[0].accumulated!.labels;
    exp2.push({
      name: "groups-accumulated-residual",
      figure: lineChart({
        title: "Logit difference from the residual stream, every group",
        x: labels,
        series: withAcc.map((g) => ({ name: g.name, values: g.accumulated!.mean })),
        yTitle: "logit diff",
      }),
      caption: `Accumulated residual stream per group (means; intervals in results.json). Final values range from ${f2(Math.min(...withAcc.map((g) => g.accumulated!.mean.at(-1)!)))} to ${f2(Math.max(...withAcc.map((g) => g.accumulated!.mean.at(-1)!)))}.`,
    });
  }
  const withHeads = gs.filter((g) => g.topHeads && g.headDla);
  if (withHeads.length) {
    const union = [...new Set(withHeads.flatMap((g) => g.topHeads!.map((c) => c.label)))];
    const cell = (g: (typeof gs)[number], label: string) => {
      const [, l, h] = /L(\d+)H(\d+)/.exec(label)!.map(Number);
      return g.headDla!.mean[l][h];
    };
    exp2.push({
      name: "groups-top-heads",
      figure: heatmap({
        title: "Direct logit attribution of each group's top heads",
        rowLabels: withHeads.map((g) => g.name),
        colLabels: union,
        values: withHeads.map((g) => union.map((u) => cell(g, u))),
        rowTitle: "group",
        colTitle: "head",
        valueTitle: "logit diff",
      }),
      caption: `The union of every group's top heads, DLA per group. Top head per group: ${withHeads.map((g) => `${g.name} ${g.topHeads![0].label} (${formatMeanSe(g.topHeads![0])})`).join("; ")}.`,
    });
  }
  const withExact = gs.filter((g) => g.layerExact?.length);
  if (withExact.length) {
    const union = [...new Set(withExact.flatMap((g) => g.layerExact!.map((c) => c.label)))];
    exp2.push({
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
      caption: `Attention/MLP outputs per layer were screened by attribution patching in each group; each group's top candidates and the focus group's were confirmed by exact patching (empty cells: not confirmed in that group). Top confirmed component per group: ${withExact
        .map((g) => {
          const t = [...g.layerExact!].sort(
            (a, b) => Math.abs(b.exactFraction) - Math.abs(a.exactFraction),
          )[0];
          return `${g.name} ${t.label} ${pct(t.exactFraction)}`;
        })
        .join("; ")}.`,
    });
  }
  const cmp = res.comparisons.items;
  if (cmp.length) {
    const sig = cmp.filter((c) => c.significant);
    exp2.push({
      name: "groups-comparisons",
      figure: barChart({
        title: `Differences from ${F} (group - ${F}), 95% bootstrap intervals`,
        labels: cmp.map((c) => `${c.group}: ${c.metric}`),
        values: cmp.map((c) => c.diff),
        errors: { lower: cmp.map((c) => c.ciLow), upper: cmp.map((c) => c.ciHigh) },
        horizontal: true,
        valueTitle: "difference of means",
      }),
      caption: `${cmp.length} comparisons, Holm-adjusted at α = ${res.comparisons.alpha}: ${sig.length} exceed prompt-to-prompt variation${
        sig.length
          ? ` — ${[...sig]
              .sort((a, b) => a.pHolm - b.pHolm)
              .slice(0, 6)
              .map(
                (c) =>
                  `${c.group} ${c.metric} ${f2(c.diff)} [${f2(c.ciLow)}, ${f2(c.ciHigh)}], adjusted p ${pFmt(c.pHolm)}`,
              )
              .join("; ")}${sig.length > 6 ? "; ..." : ""}`
          : ""
      }. Not significant: ${cmp.length - sig.length}.`,
    });
  }
  sections.push({ heading: "Experiment 2: all groups", figures: exp2 });
  return sections;
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
            caption: `${np.label} (exact patching ${pct(np.exactFraction)} of the gap): the tokens its output raises most per unit of activation (W_out[n] @ W_U): ${tokenList(page.logitEffect.top)}.`,
          }
        : {
            suffix: "suppressed",
            caption: `${np.label}: the tokens its output lowers most: ${tokenList(page.logitEffect.bottom)}.`,
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

export function toReportSections(sections: readonly StudySection[]): ReportSection[] {
  return sections.map((s) => ({
    heading: s.heading,
    text: s.text,
    figures: s.figures.map((f) => ({ figure: f.figure, caption: f.caption })),
  }));
}
