/**
 * The shape of `results.json`: every number behind every figure and caption of the report. Per-prompt
 * values are kept for the scalar measurements so any summary can be recomputed.
 */

import type { CurvePoint } from "../circuits/select.ts";
import type { CircuitBrief } from "../circuits/summary.ts";
import type { FeaturePageData } from "../neurons/feature-page.ts";
import type { NeuronPageData } from "../neurons/neuron-page.ts";
import type { StudySpec } from "./spec.ts";
import type { GridSummary, RankedCell, SampleSummary, SeriesSummary } from "./summaries.ts";

/** How a number was obtained, stated next to it in the report. */
export type Provenance = "exact" | "estimate";

export interface StudyMeta {
  tool: string;
  version: string;
  model: string;
  modelConfig: Record<string, unknown>;
  backend: string;
  seed: number;
  quick: boolean;
  node: string;
  startedAt: string;
  runSeconds: number;
  /** Wall seconds of each phase of the run. */
  stageSeconds?: Record<string, number>;
  /** The process's peak resident memory (bytes) when each phase ended: the phase that raised it needed it. */
  stagePeakRss?: Record<string, number>;
  /** Bootstrap method, stated in the report. */
  statsMethod: string;
  /** Which measurements are exact and which are estimates. */
  provenance: Record<string, string>;
  /** Study pieces left out of this run and why (e.g. a module not available). */
  omitted: string[];
  /** What the prompts and the metric are. */
  promptsText: string;
  /** When patching effects are divided by a group's gap ("fraction restored") and when they are not. */
  normalisationRule: string;
}

export interface PromptReport {
  source: string;
  groups: {
    name: string;
    kept: number;
    dropped: number;
    /** Distinct texts the templates can make for the group (generated prompts): intervals measure their variety. */
    templates?: number;
    examples: { clean: string; corrupted: string }[];
  }[];
  dropped: { group: string; clean: string; corrupted: string; reason: string }[];
  /** Every prompt used, for reproduction. */
  pairs: { group: string; clean: string; corrupted: string; answer: string; wrong: string }[];
}

/** One layer component patched exactly (clean into corrupted), with the attribution estimate next to it. */
export interface ComponentPatch {
  label: string;
  /** Patched minus corrupted logit difference, per prompt (logits). */
  exact: SampleSummary;
  /** exact.mean as a fraction of the mean clean - corrupted gap (raw when the group is not normalised). */
  exactFraction: number;
  attribution?: number;
}

export interface GroupResult {
  name: string;
  n: number;
  cleanLogitDiff: SampleSummary;
  corruptedLogitDiff: SampleSummary;
  /** clean - corrupted logit difference per prompt: how much the cue matters (the gap). */
  effect: SampleSummary;
  /**
   * false when the spec requires the clean behaviour and its interval includes 0: "the model does not do
   * this", and no stage after behaviour analyses the group.
   */
  analysed: boolean;
  /**
   * false when the gap is too small to divide by (see meta.normalisationRule): the group's patching
   * numbers are raw changes of the logit difference, not fractions restored.
   */
  normalised: boolean;
  /** Logit difference read from the accumulated residual stream after each layer (clean run). */
  accumulated?: SeriesSummary;
  /** Logit difference written by each component (clean run). */
  decomposed?: SeriesSummary;
  /**
   * The group whose texts this one uses with the roles swapped, and how many of its prompts are that
   * group's texts: quantities symmetric under the swap are equal for both by construction on those.
   */
  mirrorOf?: { group: string; shared: number };
  /** Direct logit attribution per head [layer][head] (clean run). */
  headDla?: GridSummary;
  /** The same on the corrupted run. */
  headDlaCorrupted?: GridSummary;
  /** Clean - corrupted DLA per head and prompt: what the cue changes in each head's direct effect. */
  headDlaDiff?: GridSummary;
  /** Top heads by |clean - corrupted DLA| (a head with the same bias on both runs is not a top head). */
  topHeads?: RankedCell[];
  /** Attribution-patching screen of attn/mlp outputs per layer [component][layer], normalised (if `normalised`). */
  layerScreen?: GridSummary;
  /** Top components of the screen (and the focus group's), confirmed by exact patching. */
  layerExact?: ComponentPatch[];
  // The mechanism, measured on the focus group and the spec's mechanism groups:
  /** Exact patching per layer, components resid_pre / attn_out / mlp_out, normalised [component][layer]. */
  layerPatching?: GridSummary;
  /** The positions of the per-position grids: labels, the cue (clean ≠ corrupted) and the final position. */
  positions?: { labels: string[]; cue: number[]; final: number; labelsFrom: string };
  /** Exact patching per layer and position, normalised, one grid [layer][position] per component. */
  positionPatching?: { component: string; grid: GridSummary }[];
  /**
   * Head patching split by what is patched: [head][output|query|key|value|pattern], exact; and each head's
   * attention from the final position to the cue (summed over cue positions), per prompt.
   */
  headSplit?: {
    heads: string[];
    parts: string[];
    exact: GridSummary;
    attribution: number[][];
    toCue: SampleSummary[];
  };
  /**
   * SAE features (the spec's SAE), the top ones by attribution patching (each feature at every position,
   * summed over positions, mean over prompts), each patched exactly at every position; normalised as the
   * group's other patching numbers. `peakToken`: the clean token where its attribution peaks most often.
   */
  features?: {
    hook: string;
    top: {
      feature: number;
      attribution: SampleSummary;
      exact: SampleSummary;
      peakToken: { token: string; prompts: number };
    }[];
  };
}

/** A feature of the study's attribution graph and its total effect on the logit difference. */
export interface StudyGraphFeature {
  /** circuit-tracer's node id, "{layer}_{feature}_{pos}". */
  nodeId: string;
  layer: number;
  feature: number;
  pos: number;
  /** The prompt's token at `pos`. */
  token: string;
  activation: number;
  /**
   * activation × (τ_answer − τ_wrong): the graph's total effect (every feature path through the linearised
   * replacement model) of the feature's activation on logit(answer) − logit(wrong), demeaned logits.
   */
  effect: number;
}

/** A token → feature → logit-difference path of the study's attribution graph. */
export interface StudyGraphPath {
  pos: number;
  token: string;
  feature: StudyGraphFeature;
  weight: number;
}

/** The attribution graph of the focus prompt (spec.graph), with the numbers its sentences state. */
export interface StudyGraphResult {
  prompt: string;
  transcoders: string;
  answer: string;
  wrong: string;
  nFeatures: number;
  replacementScore: number;
  completenessScore: number;
  /** The largest |effect|, sorted by it. */
  top: StudyGraphFeature[];
  /** token → feature → logit difference: edge(token → feature's pre-activation) × the feature's effect per unit. */
  paths: StudyGraphPath[];
  /** The same, from the cue's positions only (where the clean and corrupted prompts' tokens differ). */
  cuePaths: StudyGraphPath[];
  /** The graph's page in the report. */
  file: string;
}

/** An SAE feature's page, written as its own HTML file in the report (features/feature-N.html). */
export interface StudyFeaturePage {
  feature: number;
  file: string;
  page: FeaturePageData;
}

export interface AttentionExample {
  prompt: string;
  tokens: string[];
  /** Positions where the clean and corrupted prompts differ (the cue). */
  cue?: number[];
  heads: { label: string; pattern: number[][] }[];
}

export interface FocusResult extends GroupResult {
  attention?: AttentionExample[];
  /** Each top head's attention from the final position to the cue positions (summed), per focus prompt. */
  cueAttention?: { head: string; toCue: SampleSummary }[];
  neurons?: {
    layers: number[];
    /** Top neurons by attribution estimate, with exact confirmation. */
    top: { label: string; layer: number; neuron: number; attribution: number; exact: SampleSummary }[];
  };
  /** Pages of the top confirmed neurons (src/neurons): logit effect, activations on the example prompts. */
  neuronPages?: StudyNeuronPage[];
  /** The circuit of edges (src/circuits, EAP-IG at 80 % faithfulness) and its comparison with the top DLA heads. */
  circuit?: CircuitBrief & {
    scoreLabel: string;
    edgeNames: string[];
    curve: CurvePoint[];
    baseline: { clean: number; corrupted: number };
    manualTop: string[];
    versusManual: { inCircuit: string[]; missing: string[]; onlyInCircuit: string[] };
  };
  /** Attribution estimate vs exact patching over every component measured both ways. */
  attributionVsExact?: {
    points: { label: string; kind: string; attribution: number; exact: number }[];
    /** Pearson r and least-squares slope of the estimate on the exact value (1 = estimates right on average). */
    r: number;
    slope: number;
  };
}

export interface StudyNeuronPage {
  label: string;
  /** Mean exact patching effect (fraction restored) that put the neuron on the list. */
  exactFraction: number;
  /** The neuron page data; `index` is set only when a neuron index holding its layer was given. */
  page: NeuronPageData;
  /** The neuron's activation at every token of the study's example prompts. */
  prompts: { prompt: string; tokens: string[]; activations: number[] }[];
}

export interface Comparison {
  metric: string;
  group: string;
  against: string;
  diff: number;
  ciLow: number;
  ciHigh: number;
  p: number;
  pHolm: number;
  significant: boolean;
  /** Prompts the two groups share (resampled as pairs), when they share any. */
  paired?: number;
}

/** A mirror group's quantities that equal its original's by construction: reported once, never tested. */
export interface MirroredMetric {
  metric: string;
  group: string;
  mirrorOf: string;
  /** The shared value (the original's difference from the focus group, or 0 when the original is the focus). */
  diff: number;
}

export interface StudyResults {
  schemaVersion: 2;
  /** The spec that ran (`circuitscope study <id>`), its title and question. */
  study: {
    id: string;
    title: string;
    question: string;
    requireBehaviour: boolean;
    mainFigure?: string;
    /** The spec's SAE, when it has one (the features section). */
    features?: StudySpec["features"];
    /** The spec's transcoders, when it has them (the attribution-graph section). */
    graph?: StudySpec["graph"];
  };
  /** The spec's words for the clean and corrupted runs, their difference and a group. */
  words: StudySpec["words"];
  meta: StudyMeta;
  prompts: PromptReport;
  focusGroup: string;
  groups: GroupResult[];
  focus: FocusResult;
  comparisons: {
    alpha: number;
    family: string;
    items: Comparison[];
    /** Mirror groups' swap-symmetric metrics: not in the family (they would count one measurement twice). */
    mirrored?: MirroredMetric[];
    left?: string[];
  };
  /** The report's summary sentences, each generated from the numbers named next to it. */
  findings?: Finding[];
  /** Pages of the SAE features the features section names (when the spec has an SAE). */
  featurePages?: StudyFeaturePage[];
  /** The focus prompt's attribution graph (when the spec names transcoders). */
  graph?: StudyGraphResult;
  /** The graph's front-end JSON (circuit-tracer schema), written as its page; not in results.json. */
  graphPage?: { file: string; frontEnd: unknown; edgeThreshold: number };
}

/** One sentence of the summary, with the numbers (paths into this file's values) behind it. */
export interface Finding {
  text: string;
  /** The groups the sentence makes a statement about: each was measured for it (pinned by a test). */
  groups?: string[];
  /** The numbers behind the sentence, by name, and the threshold that made the sentence say what it says. */
  evidence: Record<string, number | string>;
}
