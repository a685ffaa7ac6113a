/**
 * The contraction study, end to end: prompts → per-group measurements (experiment 2) → the focus group
 * in depth (experiment 1) → comparisons across groups. Returns every number as `StudyResults`; the
 * report and files are written by `write-study.ts`.
 */
import { readFileSync } from "node:fs";
import { linearAgreement } from "../../analysis/correlation.ts";
import { headPatterns } from "../../analysis/head-patterns.ts";
import { BOOTSTRAP_METHOD, type BootstrapOptions, mean as meanOf } from "../../analysis/stats.ts";
import { blockHookName } from "../../model/hook-points.ts";
import type { HookedTransformer } from "../../model/hooked-transformer.ts";
import type { NeuronIndex } from "../../neurons/neuron-index.ts";
import { neuronActivations, neuronPageData } from "../../neurons/neuron-page.ts";
import { HEAD_COMPONENTS, headSite, neuronSite, type PatchSite } from "../../patching/targets.ts";
import { createProgress } from "../../util/progress.ts";
import { compareWithFocus, type MetricSamples } from "./compare.ts";
import { FOCUS_GROUP } from "./groups.ts";
import {
  attributionEffects,
  exactEffects,
  groupAttribution,
  logitDiffsOf,
  type PairTokens,
  type Tick,
} from "./pair-measures.ts";
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
  summarizeGrid,
  summarizeSample,
  summarizeSeries,
  topCells,
  topIndices,
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
  /** A neuron index (circuitscope index): corpus examples on the top neurons' pages. */
  neuronIndex?: NeuronIndex | null;
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

/** A layer component screened per group: the attn or MLP output of one layer, patched at every position. */
interface LayerComponent {
  label: string;
  site: PatchSite;
  /** 0 = attn, 1 = mlp (rows of the screen grid); col = layer. */
  row: number;
  col: number;
}

/** Every position of a [pos, d_model] activation: the whole hook patched at once. */
const wholeHook = (hook: string): PatchSite => ({ hook, selectors: [[null, null]] });

function layerComponents(nLayers: number): LayerComponent[] {
  const out: LayerComponent[] = [];
  for (let l = 0; l < nLayers; l++) {
    for (const [row, name, hook] of [
      [0, "attn", "hook_attn_out"],
      [1, "mlp", "hook_mlp_out"],
    ] as const) {
      const label = `L${l} ${name}`;
      out.push({ label, site: wholeHook(blockHookName(l, hook)), row, col: l });
    }
  }
  return out;
}

/** Head parts in the order of the shared `head_all` target (z, q, k, v, pattern), with the report's names. */
const HEAD_PARTS = ["output", "query", "key", "value", "pattern"] as const;

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
  const index = opts.neuronIndex ?? null;
  if (index && index.manifest.settings.dMlp !== model.cfg.dMlp) {
    throw new Error(
      `Neuron index ${index.dir} was built for d_mlp ${index.manifest.settings.dMlp} (model ${index.manifest.settings.model}), this model has ${model.cfg.dMlp}: pass the index built with this model, or leave out --neuron-index.`,
    );
  }

  const {
    set,
    source,
    focus: focusName,
  } = buildPromptSet(plan, model.cfg.nCtx, model.tokenizer, opts.promptFile);
  const groupsMap = byGroup(set.kept);
  const groupNames = [...groupsMap.keys()];
  const focusPairs = groupsMap.get(focusName)!;
  const comps = layerComponents(L);
  const positionPairs = focusPairs.slice(0, plan.positionPrompts);

  // Progress in prompt passes: each measurement adds its prompts to the total when it starts.
  const progress = createProgress({
    label: "contraction study",
    total: 1,
    quiet: opts.quiet,
    unit: "passes",
  });
  let total = 0;
  const stage = (n: number): Tick => {
    total += n;
    progress.setTotal(total);
    return (k) => progress.tick(k);
  };

  // Wall seconds per phase, in results.json and the Setup section (where a slow run spent its time).
  const stageSeconds: Record<string, number> = {};
  let lapStart = performance.now();
  const lap = (name: string) => {
    const now = performance.now();
    stageSeconds[name] = (now - lapStart) / 1000;
    lapStart = now;
  };

  try {
    // ---- experiment 2 measurements, every group (the focus group included) ------------------------
    const groupResults: GroupResult[] = [];
    const perGroup = new Map<
      string,
      { pairs: PairTokens; clean: number[]; corrupted: number[]; heads: number[][][]; screen: number[][] }
    >();
    for (const [gi, name] of groupNames.entries()) {
      const pairs = toPairTokens(groupsMap.get(name)!);
      const n = pairs.clean.length;
      const attr = groupAttribution(model, pairs, bs, stage(n));
      const clean = attr.clean;
      const corrupted = logitDiffsOf(model, pairs.corrupted, pairs.answer, pairs.wrong, bs, stage(n));
      const effect = clean.map((c, i) => c - corrupted[i]);
      const headDla = summarizeGrid(
        Array.from({ length: L }, (_, l) => `L${l}`),
        Array.from({ length: H }, (_, h) => `H${h}`),
        attr.heads,
        boot(100 * gi + 4),
      );
      // Attribution screen of attn/mlp outputs per layer, normalised by the group's mean clean-corrupted gap.
      const gap = meanOf(effect);
      const [screenRaw] = attributionEffects(
        model,
        pairs,
        [{ kind: "sites", sites: comps.map((c) => c.site) }],
        stage(n),
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
        n,
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
    }

    lap("attribution, logit differences, layer screens");
    // ---- exact confirmation of the screen: each group's top components plus the focus group's --------
    const topComponents = (g: GroupResult) =>
      topCells(
        g.layerScreen!,
        plan.exactComponentsPerGroup,
        (r, c) => `L${c} ${r === 0 ? "attn" : "mlp"}`,
      ).map((cell) => comps.find((c) => c.row === cell.row && c.col === cell.col)!);
    const focusGroupResult = groupResults.find((g) => g.name === focusName)!;
    const focusTop = topComponents(focusGroupResult);
    for (const [gi, g] of groupResults.entries()) {
      const d = perGroup.get(g.name)!;
      const chosen = [...new Set([...focusTop, ...topComponents(g)])];
      const gap = g.contractionEffect.mean;
      // One sweep for all of them: the clean and corrupted runs are shared by every patched site.
      const exact = await exactEffects(
        model,
        d.pairs,
        { kind: "sites", sites: chosen.map((c) => c.site) },
        stage(g.n),
      );
      g.layerExact = chosen.map((c, i): ComponentPatch => {
        const s = summarizeSample(exact[i], boot(100 * gi + 10 + i));
        return {
          label: c.label,
          exact: s,
          exactFraction: s.mean / gap,
          attribution: meanOf(d.screen[comps.indexOf(c)]) / gap,
        };
      });
    }

    lap("exact confirmation of screened components");
    // ---- experiment 1: the focus group in depth ---------------------------------------------------------
    const fd = perGroup.get(focusName)!;
    const fn = fd.pairs.clean.length;
    const fGap = meanOf(fd.clean) - meanOf(fd.corrupted);
    const layerLabels = Array.from({ length: L }, (_, l) => `L${l}`);
    const focus: FocusResult = { ...focusGroupResult };

    // Exact patching of resid_pre / attn_out / mlp_out per layer (all positions).
    const layerHooks = [
      ["resid_pre", "hook_resid_pre"],
      ["attn_out", "hook_attn_out"],
      ["mlp_out", "hook_mlp_out"],
    ] as const;
    const layerExact = await exactEffects(
      model,
      fd.pairs,
      {
        kind: "sites",
        sites: layerHooks.flatMap(([, hook]) => layerLabels.map((_, l) => wholeHook(blockHookName(l, hook)))),
      },
      stage(fn),
    ); // [component * L + layer][prompt]
    focus.layerPatching = summarizeGrid(
      layerHooks.map(([n]) => n),
      layerLabels,
      fd.pairs.clean.map((_, b) =>
        layerHooks.map((_, r) => layerLabels.map((_, l) => layerExact[r * L + l][b] / fGap)),
      ),
      boot(9001),
    );

    lap("exact layer patching");
    // Per position (needs every prompt to share positions, as generated prompts do).
    const sameLength = positionPairs.every(
      (p) => p.cleanTokens.length === positionPairs[0].cleanTokens.length,
    );
    if (sameLength && positionPairs.length > 0) {
      const roles = positionPairs[0].roles ?? model.toStrTokens(positionPairs[0].cleanTokens);
      const pp = toPairTokens(positionPairs);
      focus.positionPatching = [];
      for (const [ci, [name]] of layerHooks.entries()) {
        // The shared resid_pre / attn_out / mlp_out targets are [layer, pos] sweeps.
        const r = await exactEffects(model, pp, { kind: name }, stage(pp.clean.length));
        const grid = summarizeGrid(
          layerLabels,
          roles,
          pp.clean.map((_, b) =>
            layerLabels.map((_, l) => roles.map((_, p) => r[l * roles.length + p][b] / fGap)),
          ),
          boot(9100 + ci),
        );
        focus.positionPatching.push({ component: name, grid });
      }
    } else {
      omitted.push(
        "per-position patching: the focus group's prompts differ in length, so positions do not align",
      );
    }

    lap("exact per-position patching");
    // Attention patterns of the top heads on example prompts.
    const topHeads = focus.topHeads ?? [];
    const examplePairs = focusPairs.slice(0, plan.attentionExamples);
    focus.attention = examplePairs.map((p) => {
      const pats = headPatterns(
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

    lap("attention patterns");
    // Neurons of the MLP layers that matter most (by exact mlp_out patching) and every head's five parts:
    // screened together by attribution patching (one forward + backward per pair), the top confirmed exactly.
    const mlpRow = focus.layerPatching.mean[2];
    const neuronLayers = topIndices(mlpRow, plan.neuronLayers);
    const dMlp = model.cfg.dMlp;
    const screens = attributionEffects(
      model,
      fd.pairs,
      [...neuronLayers.map((layer) => ({ kind: "neurons" as const, layer })), { kind: "head_all" as const }],
      stage(fn),
    );
    const neuronAttr = neuronLayers.flatMap((_, li) => screens[li].map((v) => meanOf(v) / fGap));
    const topNeurons = topIndices(neuronAttr, plan.exactNeurons).map((i) => ({
      i,
      layer: neuronLayers[Math.floor(i / dMlp)],
      neuron: i % dMlp,
    }));
    // head_all sites are [component, layer, head].
    const headAttr = screens[neuronLayers.length].map((v) => meanOf(v) / fGap);
    const headScore = Array.from({ length: L * H }, (_, i) =>
      Math.max(...HEAD_COMPONENTS.map((_, ci) => Math.abs(headAttr[ci * L * H + i]))),
    );
    const chosenHeads = topIndices(headScore, plan.exactHeads).map((i) => ({
      i,
      layer: Math.floor(i / H),
      head: i % H,
    }));
    lap("neuron and head screen");
    // One exact sweep for the chosen neurons (all positions) and every part of the chosen heads.
    const exactSites: PatchSite[] = [
      ...topNeurons.map((t) => neuronSite({ layer: t.layer, neuron: t.neuron })),
      ...chosenHeads.flatMap((h) =>
        HEAD_COMPONENTS.map((component) => headSite({ layer: h.layer, head: h.head, component })),
      ),
    ];
    const confirmed = await exactEffects(model, fd.pairs, { kind: "sites", sites: exactSites }, stage(fn));
    const neuronExact = confirmed.slice(0, topNeurons.length); // [neuron][prompt]
    const splitExact = (k: number, ci: number) =>
      confirmed[topNeurons.length + k * HEAD_COMPONENTS.length + ci];
    focus.neurons = {
      layers: neuronLayers,
      top: topNeurons.map((t, k) => ({
        label: `L${t.layer}N${t.neuron}`,
        layer: t.layer,
        neuron: t.neuron,
        attribution: neuronAttr[t.i],
        exact: summarizeSample(
          neuronExact[k].map((v) => v / fGap),
          boot(9200 + k),
        ),
      })),
    };
    const headLabels = chosenHeads.map((h) => `L${h.layer}H${h.head}`);
    focus.headSplit = {
      heads: headLabels,
      parts: [...HEAD_PARTS],
      exact: summarizeGrid(
        headLabels,
        [...HEAD_PARTS],
        fd.pairs.clean.map((_, b) =>
          chosenHeads.map((_, k) => HEAD_PARTS.map((_, ci) => splitExact(k, ci)[b] / fGap)),
        ),
        boot(9300),
      ),
      attribution: chosenHeads.map((h) => HEAD_PARTS.map((_, ci) => headAttr[ci * L * H + h.i])),
    };

    lap("exact neurons and head parts");
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
      for (const [pi, p] of HEAD_PARTS.entries()) {
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
    const agreement = linearAgreement(
      points.map((p) => p.exact),
      points.map((p) => p.attribution),
    );
    focus.attributionVsExact = { points, r: agreement.correlation, slope: agreement.slope };

    // Neuron pages of the top confirmed neurons: direct logit effect, activations on the example prompts,
    // corpus examples from a neuron index when one was given.
    const pageNeurons = [...focus.neurons.top]
      .sort((a, b) => Math.abs(b.exact.mean) - Math.abs(a.exact.mean))
      .slice(0, plan.neuronPages);
    focus.neuronPages = pageNeurons.map((n) => {
      const indexed = index?.layers.includes(n.layer) ? index : null;
      if (index && !indexed)
        omitted.push(`corpus examples of ${n.label}: the neuron index ${index.dir} has no layer ${n.layer}`);
      const page = neuronPageData(model, n.layer, n.neuron, {
        index: indexed,
        logitTokens: 8,
        modelName: opts.modelName,
      });
      const acts = neuronActivations(
        model,
        n.layer,
        n.neuron,
        examplePairs.map((p) => p.cleanTokens),
      );
      return {
        label: n.label,
        exactFraction: n.exact.mean,
        page,
        prompts: examplePairs.map((p, i) => ({
          prompt: p.clean,
          tokens: model.toStrTokens(p.cleanTokens),
          activations: acts[i],
        })),
      };
    });
    if (!index) omitted.push("corpus examples of the top neurons: no --neuron-index DIR was given");

    lap("agreement, neuron pages");
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

    lap("group comparisons");
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
        stageSeconds,
        statsMethod: `${BOOTSTRAP_METHOD} Intervals are ${100 * (1 - ALPHA)}%, ${plan.resamples} resamples; ± is one standard error over prompts. Patching effects are per prompt (patched - corrupted logit difference) divided by the group's mean clean - corrupted gap, so their mean is the usual normalised patching metric. Comparisons between groups use max(${plan.resamples}, 20m/α) resamples for a family of m tests, so that a Holm-adjusted p-value can fall below α.`,
        provenance: {
          "logit differences, accumulated/decomposed residual, head DLA (src/analysis attribution)":
            "exact (read from cached activations)",
          "layer patching (experiment 1), per-position patching, confirmed components/neurons/head parts (src/patching activationPatching)":
            "exact activation patching (clean → corrupted)",
          "layer screen per group, neuron screen, head-part screen (src/patching attributionPatchingAll)":
            "estimate (attribution patching: first-order, one forward + backward per pair)",
          "neuron pages (src/neurons)": "exact (weights, and activations recomputed with the model)",
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
