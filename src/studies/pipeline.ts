/**
 * The one pipeline every study runs: prompts from the spec (or a file) are validated, then each stage
 * measures and adds its slice to the results. Returns every number as `StudyResults`; the report and
 * files are written by `write-study.ts`.
 */
import { readFileSync } from "node:fs";
import { BOOTSTRAP_METHOD } from "../analysis/stats.ts";
import type { HookedTransformer } from "../model/hooked-transformer.ts";
import type { NeuronIndex } from "../neurons/neuron-index.ts";
import { collectGarbage } from "../util/collect-garbage.ts";
import { createProgress } from "../util/progress.ts";
import { type PreparedGroup, StudyContext, toPairTokens } from "./context.ts";
import type { Tick } from "./pair-measures.ts";
import {
  byGroup,
  type PromptPair,
  type PromptSet,
  readPromptFile,
  sharedUnits,
  validatePairs,
} from "./prompts.ts";
import type { FocusResult, GroupResult, PromptReport, StudyResults } from "./results.ts";
import type { StudyPlan, StudySpec } from "./spec.ts";
import { applySlice, type Stage } from "./stage.ts";
import { agreementStage } from "./stages/agreement.ts";
import { attentionStage } from "./stages/attention.ts";
import { behaviourStage, NORMALISATION_RULE } from "./stages/behaviour.ts";
import { circuitStage } from "./stages/circuit.ts";
import { ALPHA, comparisonsStage } from "./stages/comparisons.ts";
import { headPartsStage, neuronStage } from "./stages/components.ts";
import { featuresStage } from "./stages/features.ts";
import { graphStage } from "./stages/graph.ts";
import { headDlaStage } from "./stages/head-dla.ts";
import { layerScreenStage } from "./stages/layer-screen.ts";
import { mechanismStage } from "./stages/mechanisms.ts";
import { patchingStage } from "./stages/patching.ts";
import { residualStage } from "./stages/residual.ts";

/** The stages in order; each may read what earlier ones added. */
export const STAGES: readonly Stage[] = [
  behaviourStage,
  residualStage,
  headDlaStage,
  layerScreenStage,
  attentionStage,
  patchingStage,
  neuronStage,
  headPartsStage,
  mechanismStage,
  featuresStage,
  graphStage,
  agreementStage,
  circuitStage,
  comparisonsStage,
];

export interface RunStudyOptions {
  model: HookedTransformer;
  modelName: string;
  backend: string;
  spec: StudySpec;
  plan: StudyPlan;
  /** A user prompt file (JSON/JSONL) instead of the generated prompts. */
  promptFile?: string;
  /** No progress bars (e.g. --json). */
  quiet?: boolean;
  /** Told what the user should know but results.json alone would hide (pairs or groups dropped from the prompts). */
  notice?: (text: string) => void;
  /** A neuron index (circuitscope index): corpus examples on the top neurons' pages. */
  neuronIndex?: NeuronIndex | null;
}

function packageVersion(): string {
  try {
    const pkg = JSON.parse(readFileSync(new URL("../../package.json", import.meta.url), "utf8"));
    return String(pkg.version);
  } catch {
    return "unknown";
  }
}

/** The prompts of the run: generated (the focus group gets more) or from the user's file; validated. */
export function buildPromptSet(
  spec: StudySpec,
  plan: StudyPlan,
  model: HookedTransformer,
  promptFile?: string,
): { set: PromptSet; source: string; focus: string } {
  let pairs: PromptPair[];
  let source: string;
  if (promptFile) {
    pairs = readPromptFile(promptFile);
    source = `file ${promptFile}`;
  } else {
    const ordered = [
      ...plan.groups.filter((g) => g.name === spec.focusGroup),
      ...plan.groups.filter((g) => g.name !== spec.focusGroup),
    ];
    pairs = spec.generate(
      ordered,
      (g) => (g.name === spec.focusGroup ? plan.focusPrompts : plan.perGroup),
      plan.seed,
    );
    source = `templates (seed ${plan.seed})`;
  }
  const set = validatePairs(pairs, model.tokenizer, { maxTokens: model.cfg.nCtx });
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
  const focus = groups.includes(spec.focusGroup) ? spec.focusGroup : groups[0];
  return { set, source, focus };
}

/** "Dropped 3 of 10 pairs of FILE ...": the count per reason, and the groups left with no pair at all. */
export function droppedNotice(set: PromptSet, source: string): string {
  const reasons = new Map<string, number>();
  for (const d of set.dropped) reasons.set(d.reason, (reasons.get(d.reason) ?? 0) + 1);
  const total = set.kept.length + set.dropped.length;
  const lines = [
    `Dropped ${set.dropped.length} of ${total} prompt pairs from ${source} (each is listed in results.json under prompts.dropped):`,
    ...[...reasons].map(([reason, n]) => `  ${n} × ${reason}`),
  ];
  const kept = byGroup(set.kept);
  const emptied = [...new Set(set.dropped.map((d) => d.pair.group))].filter((g) => !kept.has(g));
  if (emptied.length > 0)
    lines.push(
      `Group${emptied.length > 1 ? "s" : ""} ${emptied.map((g) => JSON.stringify(g)).join(", ")} kept no pair and ${emptied.length > 1 ? "are" : "is"} not studied: fix ${emptied.length > 1 ? "their" : "its"} pairs to include ${emptied.length > 1 ? "them" : "it"}.`,
    );
  return `${lines.join("\n")}\n`;
}

function promptReport(
  set: PromptSet,
  source: string,
  templates?: (group: string) => number | undefined,
): PromptReport {
  const kept = byGroup(set.kept);
  const dropped = byGroup(set.dropped.map((d) => ({ ...d, group: d.pair.group })));
  const names = [...new Set([...kept.keys(), ...dropped.keys()])];
  return {
    source,
    groups: names.map((name) => ({
      name,
      kept: kept.get(name)?.length ?? 0,
      dropped: dropped.get(name)?.length ?? 0,
      ...(templates?.(name) !== undefined ? { templates: templates(name) } : {}),
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

export async function runStudy(opts: RunStudyOptions): Promise<StudyResults> {
  const t0 = performance.now();
  const startedAt = new Date().toISOString();
  const { model, plan, spec } = opts;
  const index = opts.neuronIndex ?? null;
  if (index && index.manifest.settings.dMlp !== model.cfg.dMlp) {
    throw new Error(
      `Neuron index ${index.dir} was built for d_mlp ${index.manifest.settings.dMlp} (model ${index.manifest.settings.model}), this model has ${model.cfg.dMlp}: pass the index built with this model, or leave out --neuron-index.`,
    );
  }
  const { set, source, focus } = buildPromptSet(spec, plan, model, opts.promptFile);
  if (set.dropped.length > 0) opts.notice?.(droppedNotice(set, source));
  const groups: PreparedGroup[] = [...byGroup(set.kept)].map(([name, pairs], index) => ({
    name,
    index,
    pairs,
    tokens: toPairTokens(pairs),
  }));

  // Progress in prompt passes: each measurement adds its prompts to the total when it starts.
  const progress = createProgress({ label: `${spec.id} study`, total: 1, quiet: opts.quiet, unit: "passes" });
  let total = 0;
  const work = (n: number): Tick => {
    total += n;
    progress.setTotal(total);
    return (k) => progress.tick(k);
  };
  const ctx = new StudyContext({
    model,
    modelName: opts.modelName,
    spec,
    plan,
    groups,
    focus,
    work,
    neuronIndex: index,
  });
  const mirrorOf = (g: PreparedGroup) => {
    const of = spec.groups.find((x) => x.name === g.name)?.mirrorOf;
    const original = groups.find((x) => x.name === of);
    return original
      ? { mirrorOf: { group: original.name, shared: sharedUnits(g.pairs, original.pairs).length } }
      : {};
  };
  const blankGroup = (g: PreparedGroup) =>
    ({ name: g.name, n: g.pairs.length, ...mirrorOf(g) }) as GroupResult;
  const templates = (name: string) => {
    const g = spec.groups.find((x) => x.name === name);
    return opts.promptFile || !g ? undefined : spec.templateCount?.(g);
  };
  const res: StudyResults = {
    schemaVersion: 2,
    study: {
      id: spec.id,
      title: spec.title,
      question: spec.question,
      requireBehaviour: spec.requireBehaviour,
      mainFigure: spec.mainFigure,
      ...(spec.features ? { features: spec.features } : {}),
      ...(spec.graph ? { graph: spec.graph } : {}),
    },
    words: spec.words,
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
      runSeconds: 0,
      stageSeconds: {},
      stagePeakRss: {},
      statsMethod: `${BOOTSTRAP_METHOD} Intervals are ${100 * (1 - ALPHA)}%, ${plan.resamples} resamples; ± is one standard error over prompts. Comparisons between groups use max(${plan.resamples}, 20m/α) resamples for a family of m tests, so that a Holm-adjusted p-value can fall below α.`,
      normalisationRule: NORMALISATION_RULE,
      provenance: {
        "logit differences, accumulated/decomposed residual, head DLA (src/analysis attribution)":
          "exact (read from cached activations)",
        "layer patching, per-position patching, confirmed components/neurons/head parts (src/patching activationPatching)":
          "exact activation patching (clean → corrupted)",
        "layer screen per group, neuron screen, head-part screen (src/patching attributionPatchingAll)":
          "estimate (attribution patching: first-order, one forward + backward per pair)",
        "neuron pages (src/neurons)": "exact (weights, and activations recomputed with the model)",
        ...(spec.features
          ? {
              "SAE features: the screen (src/patching attributionPatching, target features)":
                "estimate (attribution patching over every feature at every position)",
              "SAE features: the top ones (src/patching activationPatching, target features)":
                "exact activation patching of each feature at every position (the SAE with its error term)",
            }
          : {}),
        ...(spec.graph
          ? {
              "attribution graph (src/graphs attributeGraph, featureLogitEffects, graphScores)":
                "the linearised replacement model's prediction on one prompt (transcoders spliced in, errors as nodes), not an intervention",
            }
          : {}),
      },
      promptsText: spec.promptsText,
      omitted: ctx.omitted,
    },
    prompts: promptReport(set, source, templates),
    focusGroup: focus,
    groups: groups.map(blankGroup),
    focus: blankGroup(groups.find((g) => g.name === focus)!) as FocusResult,
    comparisons: { alpha: ALPHA, family: "", items: [] },
  };
  try {
    for (const stage of STAGES) {
      const start = performance.now();
      applySlice(res, await stage.run(ctx, res));
      res.meta.stageSeconds![stage.name] = (performance.now() - start) / 1000;
      res.meta.stagePeakRss![stage.name] = process.resourceUsage().maxRSS * 1024;
      collectGarbage(); // what the stage let go goes back to the system before the next one starts
    }
  } finally {
    progress.stop();
  }
  // The summary reads as a story: behaviour, where the information is, which heads move it, neurons, groups.
  const storyOrder: readonly Stage[] = [
    behaviourStage,
    patchingStage,
    headDlaStage,
    attentionStage,
    headPartsStage,
    mechanismStage,
    neuronStage,
    featuresStage,
    graphStage,
    comparisonsStage,
  ];
  res.findings = [...storyOrder, ...STAGES.filter((s) => !storyOrder.includes(s))].flatMap(
    (s) => s.findings?.(res) ?? [],
  );
  res.meta.runSeconds = (performance.now() - t0) / 1000;
  return res;
}
