/**
 * The contraction study, end to end: prompts → per-group measurements (experiment 2) → the focus group
 * in depth (experiment 1) → comparisons across groups. Returns every number as `StudyResults`; the
 * report and files are written by `write-study.ts`.
 */
import { readFileSync } from "node:fs";
import { BOOTSTRAP_METHOD, type BootstrapOptions } from "../../analysis/stats.ts";
import type { HookedTransformer } from "../../model/hooked-transformer.ts";
import { createProgress } from "../../util/progress.ts";
import { attributionPatching } from "./attribution.ts";
import { compareWithFocus, type MetricSamples } from "./compare.ts";
import { FOCUS_GROUP } from "./groups.ts";
import {
  attentionPatterns,
  exactPatching,
  logitDiffsOf,
  type PairTokens,
  type PatchTarget,
  residualAttributions,
} from "./measures.ts";
import type { StudyPlan } from "./plan.ts";
import {
  byGroup,
  generatePrompts,
  type PromptPair,
  type PromptSet,
  readPromptFile,
  type ValidatedPair,
  validatePairs,
} from "./prompts.ts";
import type { ComponentPatch, FocusResult, GroupResult, PromptReport, StudyResults } from "./results.ts";
import {
  type GridSummary,
  pearson,
  summarizeGrid,
  summarizeSample,
  summarizeSeries,
  topCells,
} from "./summaries.ts";

export interface RunStudyOptions {
  model: HookedTransformer;
  modelName: string;
  backend: string;
  plan: StudyPlan;
  /** A user prompt file (JSON/JSONL) instead of the generated prompts. */
  promptFile?: string;
  /** No progress bars (e.g. --json). */
  quiet?: boolean;
}

const ALPHA = 0.05;

function packageVersion(): string {
  try {
    const pkg = JSON.parse(readFileSync(new URL("../../../package.json", import.meta.url), "utf8"));
    return String(pkg.version);
  } catch {
    return "unknown";
  }
}

function toPairTokens(pairs: readonly ValidatedPair[]): PairTokens {
  return {
    clean: pairs.map((p) => p.cleanTokens),
    corrupted: pairs.map((p) => p.corruptedTokens),
    answer: pairs.map((p) => p.answerToken),
    wrong: pairs.map((p) => p.wrongToken),
  };
}

const meanOf = (xs: readonly number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;

/** The prompts of the run: generated (focus group gets more) or from the user's file; validated. */
export function buildPromptSet(
  plan: StudyPlan,
  maxTokens: number,
  tok: HookedTransformer["tokenizer"],
  promptFile?: string,
): { set: PromptSet; source: string; focus: string } {
  let pairs: PromptPair[];
  let source: string;
  if (promptFile) {
    pairs = readPromptFile(promptFile);
    source = `file ${promptFile}`;
  } else {
    const others = plan.groups.filter((g) => g.name !== FOCUS_GROUP);
    const focus = plan.groups.filter((g) => g.name === FOCUS_GROUP);
    pairs = [
      ...generatePrompts(focus, plan.focusPrompts, plan.seed),
      ...generatePrompts(others, plan.perGroup, plan.seed),
    ];
    source = `templates (seed ${plan.seed})`;
  }
  const set = validatePairs(pairs, tok, { maxTokens });
  if (set.kept.length === 0) {
    const why = set.dropped
      .slice(0, 3)
      .map((d) => d.reason)
      .join("; ");
    throw new Error(
      `No usable prompt pairs (${set.dropped.length} dropped: ${why}). Fix the prompts and retry.`,
    );
  }
  const groups = [...byGroup(set.kept).keys()];
  const focus = groups.includes(FOCUS_GROUP) ? FOCUS_GROUP : groups[0];
  return { set, source, focus };
}

function promptReport(set: PromptSet, source: string): PromptReport {
  const kept = byGroup(set.kept);
  const dropped = byGroup(set.dropped.map((d) => ({ ...d, group: d.pair.group })));
  const names = [...new Set([...kept.keys(), ...dropped.keys()])];
  return {
    source,
    groups: names.map((name) => ({
      name,
      kept: kept.get(name)?.length ?? 0,
      dropped: dropped.get(name)?.length ?? 0,
      examples: (kept.get(name) ?? []).slice(0, 3).map((p) => ({ clean: p.clean, corrupted: p.corrupted })),
    })),
    dropped: set.dropped.map((d) => ({
      group: d.pair.group,
      clean: d.pair.clean,
      corrupted: d.pair.corrupted,
      reason: d.reason,
    })),
    pairs: set.kept.map((p) => ({
      group: p.group,
      clean: p.clean,
      corrupted: p.corrupted,
      answer: p.answer,
      wrong: p.wrong,
    })),
  };
}

/** Labels of the layer components screened per group: attn and MLP output of each layer. */
function layerComponents(
  nLayers: number,
): { label: string; target: PatchTarget; row: number; col: number }[] {
  const out: { label: string; target: PatchTarget; row: number; col: number }[] = [];
  for (let l = 0; l < nLayers; l++) {
    out.push({
      label: `L${l} attn`,
      target: { label: `L${l} attn`, hook: "hook_attn_out", layer: l },
      row: 0,
      col: l,
    });
    out.push({
      label: `L${l} mlp`,
      target: { label: `L${l} mlp`, hook: "hook_mlp_out", layer: l },
      row: 1,
      col: l,
    });
  }
  return out;
}

export async function runStudy(opts: RunStudyOptions): Promise<StudyResults> {
  const t0 = performance.now();
  const startedAt = new Date().toISOString();
  const { model, plan } = opts;
  const { nLayers: L, nHeads: H } = model.cfg;
  const bs = plan.batchSize;
  const boot = (seed: number): BootstrapOptions => ({
    resamples: plan.resamples,
    seed: plan.seed * 7919 + seed,
  });
  const omitted: string[] = [];

  const {
    set,
    source,
    focus: focusName,
  } = buildPromptSet(plan, model.cfg.nCtx, model.tokenizer, opts.promptFile);
  const groupsMap = byGroup(set.kept);
  const groupNames = [...groupsMap.keys()];
  const focusPairs = groupsMap.get(focusName)!;

  // ---- progress: units are prompt-forwards (one batched forward of n prompts = n units) -------------
  const comps = layerComponents(L);
  const nPrompts = set.kept.length;
  const P = Math.max(...focusPairs.map((p) => p.cleanTokens.length));
  const positionPairs = focusPairs.slice(0, plan.positionPrompts);
  const total =
    nPrompts * 2 + // clean + corrupted logit diffs
    nPrompts + // residual attributions
    nPrompts * 3 + // attribution screen (forward+backward+clean)
    groupNames.length * 2 * plan.exactComponentsPerGroup * (nPrompts / groupNames.length) +
    focusPairs.length * 3 * L + // exact layer patching
    positionPairs.length * 3 * L * P +
    focusPairs.length * (3 + plan.exactNeurons + plan.exactHeads * 5);
  const progress = createProgress({
    label: "contraction study",
    total: Math.round(total),
    quiet: opts.quiet,
    unit: "runs",
  });
  const tick = (n = 1) => progress.tick(n);

  try {
    // ---- experiment 2 measurements, every group (the focus group included) ------------------------
    const groupResults: GroupResult[] = [];
    const perGroup = new Map<
      string,
      { pairs: PairTokens; clean: number[]; corrupted: number[]; heads: number[][][]; screen: number[][] }
    >();
    groupNames.forEach((name, gi) => {
      const pairs = toPairTokens(groupsMap.get(name)!);
      const clean = logitDiffsOf(model, pairs.clean, pairs.answer, pairs.wrong, bs, tick);
      const corrupted = logitDiffsOf(model, pairs.corrupted, pairs.answer, pairs.wrong, bs, tick);
      const effect = clean.map((c, i) => c - corrupted[i]);
      const attr = residualAttributions(model, pairs.clean, pairs.answer, pairs.wrong, bs, tick);
      const headDla = summarizeGrid(
        Array.from({ length: L }, (_, l) => `L${l}`),
        Array.from({ length: H }, (_, h) => `H${h}`),
        attr.heads,
        boot(100 * gi + 4),
      );
      // Attribution screen of attn/mlp outputs per layer, normalised by the group's mean clean-corrupted gap.
      const gap = meanOf(effect);
      const screenRaw = attributionPatching(
        model,
        pairs,
        comps.map((c) => c.target),
        bs,
        (n) => tick(3 * (n ?? 1)),
      );
      const screenPerPrompt = pairs.clean.map((_, b) =>
        [0, 1].map((row) =>
          comps.filter((c) => c.row === row).map((c) => screenRaw[comps.indexOf(c)][b] / gap),
        ),
      );
      const layerScreen = summarizeGrid(
        ["attn", "mlp"],
        Array.from({ length: L }, (_, l) => `L${l}`),
        screenPerPrompt,
        boot(100 * gi + 5),
      );
      groupResults.push({
        name,
        n: clean.length,
        cleanLogitDiff: summarizeSample(clean, boot(100 * gi)),
        corruptedLogitDiff: summarizeSample(corrupted, boot(100 * gi + 1)),
        contractionEffect: summarizeSample(effect, boot(100 * gi + 2)),
        accumulated: summarizeSeries(attr.accumulatedLabels, attr.accumulated, boot(100 * gi + 3)),
        decomposed: summarizeSeries(attr.decomposedLabels, attr.decomposed, boot(100 * gi + 6)),
        headDla,
        topHeads: topCells(headDla, plan.topHeads, (l, h) => `L${l}H${h}`),
        layerScreen,
      });
      perGroup.set(name, { pairs, clean, corrupted, heads: attr.heads, screen: screenRaw });
    });

    // ---- exact confirmation of the screen: each group's top components plus the focus group's --------
    const topComponents = (g: GroupResult) =>
      topCells(
        g.layerScreen!,
        plan.exactComponentsPerGroup,
        (r, c) => `L${c} ${r === 0 ? "attn" : "mlp"}`,
      ).map((cell) => comps.find((c) => c.row === cell.row && c.col === cell.col)!);
    const focusGroupResult = groupResults.find((g) => g.name === focusName)!;
    const focusTop = topComponents(focusGroupResult);
    groupResults.forEach((g, gi) => {
      const d = perGroup.get(g.name)!;
      const chosen = [...new Set([...focusTop, ...topComponents(g)])];
      const exact = exactPatching(
        model,
        d.pairs,
        chosen.map((c) => c.target),
        bs,
        tick,
      );
      const gap = g.contractionEffect.mean;
      g.layerExact = chosen.map((c, i): ComponentPatch => {
        const s = summarizeSample(exact[i], boot(100 * gi + 10 + i));
        return {
          label: c.label,
          exact: s,
          exactFraction: s.mean / gap,
          attribution: meanOf(d.screen[comps.indexOf(c)]) / gap,
        };
      });
    });

    // ---- experiment 1: the focus group in depth ---------------------------------------------------------
    const fd = perGroup.get(focusName)!;
    const fGap = meanOf(fd.clean) - meanOf(fd.corrupted);
    const layerLabels = Array.from({ length: L }, (_, l) => `L${l}`);
    const focus: FocusResult = { ...focusGroupResult };

    // Exact patching of resid_pre / attn_out / mlp_out per layer (all positions).
    const layerHooks = [
      ["resid_pre", "hook_resid_pre"],
      ["attn_out", "hook_attn_out"],
      ["mlp_out", "hook_mlp_out"],
    ] as const;
    const layerTargets: PatchTarget[] = layerHooks.flatMap(([name, hook]) =>
      layerLabels.map((label, l) => ({ label: `${label} ${name}`, hook, layer: l })),
    );
    const layerExact = exactPatching(model, fd.pairs, layerTargets, bs, tick);
    focus.layerPatching = summarizeGrid(
      layerHooks.map(([n]) => n),
      layerLabels,
      fd.pairs.clean.map((_, b) =>
        layerHooks.map((_, r) => layerLabels.map((_, l) => layerExact[r * L + l][b] / fGap)),
      ),
      boot(9001),
    );

    // Per position (needs every prompt to share positions, as generated prompts do).
    const sameLength = positionPairs.every(
      (p) => p.cleanTokens.length === positionPairs[0].cleanTokens.length,
    );
    if (sameLength && positionPairs.length > 0) {
      const roles = positionPairs[0].roles ?? model.toStrTokens(positionPairs[0].cleanTokens);
      const pp = toPairTokens(positionPairs);
      focus.positionPatching = layerHooks.map(([name, hook], ci) => {
        const targets: PatchTarget[] = [];
        for (let l = 0; l < L; l++)
          for (let p = 0; p < roles.length; p++)
            targets.push({ label: `L${l} ${roles[p]}`, hook, layer: l, position: p });
        const r = exactPatching(model, pp, targets, bs, tick);
        const grid = summarizeGrid(
          layerLabels,
          roles,
          pp.clean.map((_, b) =>
            layerLabels.map((_, l) => roles.map((_, p) => r[l * roles.length + p][b] / fGap)),
          ),
          boot(9100 + ci),
        );
        return { component: name, grid };
      });
    } else {
      omitted.push(
        "per-position patching: the focus group's prompts differ in length, so positions do not align",
      );
    }

    // Attention patterns of the top heads on example prompts.
    const topHeads = focus.topHeads ?? [];
    focus.attention = focusPairs.slice(0, plan.attentionExamples).map((p) => {
      const pats = attentionPatterns(
        model,
        p.cleanTokens,
        topHeads.map((c) => ({ layer: c.row, head: c.col })),
      );
      return {
        prompt: p.clean,
        tokens: model.toStrTokens(p.cleanTokens),
        heads: topHeads.map((c, i) => ({ label: c.label, pattern: pats[i] })),
      };
    });
    tick(plan.attentionExamples);

    // Neurons: screen every neuron of the MLP layers that matter most (by exact mlp_out patching), confirm the top.
    const mlpRow = focus.layerPatching.mean[2];
    const neuronLayers = [...mlpRow.keys()]
      .sort((a, b) => Math.abs(mlpRow[b]) - Math.abs(mlpRow[a]))
      .slice(0, plan.neuronLayers);
    const dMlp = model.cfg.dMlp;
    const neuronTargets: PatchTarget[] = neuronLayers.flatMap((layer) =>
      Array.from({ length: dMlp }, (_, n) => ({
        label: `L${layer}N${n}`,
        hook: "mlp.hook_post",
        layer,
        neuron: n,
      })),
    );
    const neuronAttr = attributionPatching(model, fd.pairs, neuronTargets, bs, tick).map(meanOf);
    const topNeuronIdx = [...neuronAttr.keys()]
      .sort((a, b) => Math.abs(neuronAttr[b]) - Math.abs(neuronAttr[a]))
      .slice(0, plan.exactNeurons);
    const neuronExact = exactPatching(
      model,
      fd.pairs,
      topNeuronIdx.map((i) => neuronTargets[i]),
      bs,
      tick,
    );
    focus.neurons = {
      layers: neuronLayers,
      top: topNeuronIdx.map((i, k) => ({
        label: neuronTargets[i].label,
        layer: neuronTargets[i].layer,
        neuron: neuronTargets[i].neuron!,
        attribution: neuronAttr[i] / fGap,
        exact: summarizeSample(
          fd.pairs.clean.map((_, b) => neuronExact[k][b] / fGap),
          boot(9200 + k),
        ),
      })),
    };

    // Heads split into output / query / key / value / pattern: screen all heads by attribution, confirm the top.
    const parts = [
      ["output", "attn.hook_z"],
      ["query", "attn.hook_q"],
      ["key", "attn.hook_k"],
      ["value", "attn.hook_v"],
      ["pattern", "attn.hook_pattern"],
    ] as const;
    const allHeads = Array.from({ length: L * H }, (_, i) => ({ layer: Math.floor(i / H), head: i % H }));
    const headAttrTargets: PatchTarget[] = parts.flatMap(([part, hook]) =>
      allHeads.map(({ layer, head }) => ({ label: `L${layer}H${head} ${part}`, hook, layer, head })),
    );
    const headAttr = attributionPatching(model, fd.pairs, headAttrTargets, bs, tick).map(
      (v) => meanOf(v) / fGap,
    );
    const headScore = allHeads.map((_, i) =>
      Math.max(...parts.map((_, pi) => Math.abs(headAttr[pi * allHeads.length + i]))),
    );
    const chosenHeads = [...headScore.keys()]
      .sort((a, b) => headScore[b] - headScore[a])
      .slice(0, plan.exactHeads);
    const splitTargets = chosenHeads.flatMap((hi) =>
      parts.map((_, pi) => headAttrTargets[pi * allHeads.length + hi]),
    );
    const splitExact = exactPatching(model, fd.pairs, splitTargets, bs, tick);
    const headLabels = chosenHeads.map((hi) => `L${allHeads[hi].layer}H${allHeads[hi].head}`);
    focus.headSplit = {
      heads: headLabels,
      parts: parts.map(([p]) => p),
      exact: summarizeGrid(
        headLabels,
        parts.map(([p]) => p),
        fd.pairs.clean.map((_, b) =>
          chosenHeads.map((_, k) => parts.map((_, pi) => splitExact[k * parts.length + pi][b] / fGap)),
        ),
        boot(9300),
      ),
      attribution: chosenHeads.map((hi) => parts.map((_, pi) => headAttr[pi * allHeads.length + hi])),
    };

    // Attribution estimate vs exact, over everything measured both ways.
    const points: { label: string; kind: string; attribution: number; exact: number }[] = [];
    for (const c of comps) {
      const row = c.row === 0 ? 1 : 2; // attn_out / mlp_out rows of layerPatching
      points.push({
        label: c.label,
        kind: "layer output",
        attribution: meanOf(fd.screen[comps.indexOf(c)]) / fGap,
        exact: focus.layerPatching.mean[row][c.col],
      });
    }
    for (const [k, h] of focus.headSplit.heads.entries()) {
      for (const [pi, [p]] of parts.entries()) {
        points.push({
          label: `${h} ${p}`,
          kind: `head ${p}`,
          attribution: focus.headSplit.attribution[k][pi],
          exact: focus.headSplit.exact.mean[k][pi],
        });
      }
    }
    for (const n of focus.neurons.top)
      points.push({ label: n.label, kind: "neuron", attribution: n.attribution, exact: n.exact.mean });
    focus.attributionVsExact = {
      points,
      r: pearson(
        points.map((p) => p.attribution),
        points.map((p) => p.exact),
      ),
    };

    // ---- comparisons across groups -------------------------------------------------------------------
    const metrics: MetricSamples[] = [
      { metric: "clean logit diff", byGroup: new Map(groupNames.map((g) => [g, perGroup.get(g)!.clean])) },
      {
        metric: "contraction effect (clean - corrupted)",
        byGroup: new Map(
          groupNames.map((g) => [g, groupResults.find((r) => r.name === g)!.contractionEffect.perPrompt]),
        ),
      },
    ];
    for (const head of topHeads.slice(0, 3)) {
      metrics.push({
        metric: `DLA of ${head.label}`,
        byGroup: new Map(
          groupNames.map((g) => [g, perGroup.get(g)!.heads.map((p) => p[head.row][head.col])]),
        ),
      });
    }
    for (const c of focusTop.slice(0, 2)) {
      metrics.push({
        metric: `${c.label} patching (fraction of own gap)`,
        byGroup: new Map(
          groupNames.map((g) => {
            const r = groupResults.find((x) => x.name === g)!;
            const e = r.layerExact!.find((x) => x.label === c.label)!;
            return [g, e.exact.perPrompt.map((v) => v / r.contractionEffect.mean)];
          }),
        ),
      });
    }
    const comparisons =
      groupNames.length > 1
        ? compareWithFocus(metrics, focusName, { alpha: ALPHA, resamples: plan.resamples, seed: plan.seed })
        : [];

    return {
      schemaVersion: 1,
      meta: {
        tool: "circuitscope",
        version: packageVersion(),
        model: opts.modelName,
        modelConfig: { ...model.cfg },
        backend: opts.backend,
        seed: plan.seed,
        quick: plan.quick,
        node: process.version,
        startedAt,
        runSeconds: (performance.now() - t0) / 1000,
        statsMethod: `${BOOTSTRAP_METHOD} Intervals are ${100 * (1 - ALPHA)}%, ${plan.resamples} resamples; ± is one standard error over prompts. Patching effects are per prompt (patched - corrupted logit difference) divided by the group's mean clean - corrupted gap, so their mean is the usual normalised patching metric. Comparisons between groups use max(${plan.resamples}, 20m/α) resamples for a family of m tests, so that a Holm-adjusted p-value can fall below α.`,
        provenance: {
          "logit differences, accumulated/decomposed residual, head DLA":
            "exact (read from cached activations)",
          "layer patching (experiment 1), per-position patching, confirmed components/neurons/head parts":
            "exact activation patching (clean → corrupted)",
          "layer screen per group, neuron screen, head-part screen":
            "estimate (attribution patching: first-order, one forward + backward per batch)",
        },
        omitted,
      },
      prompts: promptReport(set, source),
      focusGroup: focusName,
      groups: groupResults,
      focus,
      comparisons: {
        alpha: ALPHA,
        family: "each group vs the focus group, every metric; Holm-adjusted",
        items: comparisons,
      },
    };
  } finally {
    progress.stop();
  }
}

export type { GridSummary };
