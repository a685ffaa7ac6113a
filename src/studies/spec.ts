/**
 * A study as a declarative spec: the question, the groups, how prompt pairs are made, and how much of the
 * shared pipeline (src/studies/pipeline.ts) to run. A new study is one file exporting a `StudySpec`.
 */
import type { PromptPair } from "./prompts.ts";

/** How much of the study to run: prompt counts, candidates confirmed exactly, bootstrap resamples. */
export interface StudySizes {
  /** Generated prompts per group. */
  perGroup: number;
  /** Generated prompts of the focus group (studied in depth; a superset of its per-group prompts). */
  focusPrompts: number;
  /** Prompts of the focus group used for per-position patching (layers x positions x components forwards each). */
  positionPrompts: number;
  /** Top heads reported per group and shown in attention views. */
  topHeads: number;
  /** Example prompts whose attention patterns are shown. */
  attentionExamples: number;
  /** MLP layers whose neurons are screened, and neurons confirmed by exact patching. */
  neuronLayers: number;
  exactNeurons: number;
  /** Top confirmed neurons given a neuron page in the report. */
  neuronPages: number;
  /** Heads whose output/query/key/value/pattern patching is confirmed exactly. */
  exactHeads: number;
  /** Layer components (attn/mlp x layer) confirmed exactly per group. */
  exactComponentsPerGroup: number;
  /** Bootstrap resamples for every interval and test. */
  resamples: number;
  /** Prompts per forward batch. */
  batchSize: number;
}

/**
 * Sizes that suit most studies: the full run targets < 30 min for GPT-2 small on 2 cores, --quick < 3 min.
 * A spec spreads them and overrides what differs.
 */
export const DEFAULT_SIZES: { full: StudySizes; quick: StudySizes } = {
  full: {
    perGroup: 20,
    focusPrompts: 40,
    positionPrompts: 12,
    topHeads: 5,
    attentionExamples: 3,
    neuronLayers: 2,
    exactNeurons: 20,
    neuronPages: 3,
    exactHeads: 10,
    exactComponentsPerGroup: 6,
    resamples: 2000,
    batchSize: 32,
  },
  quick: {
    perGroup: 8,
    focusPrompts: 12,
    positionPrompts: 4,
    topHeads: 3,
    attentionExamples: 2,
    neuronLayers: 1,
    exactNeurons: 5,
    neuronPages: 2,
    exactHeads: 3,
    exactComponentsPerGroup: 3,
    resamples: 1000,
    batchSize: 16,
  },
};

/** One group of a study: a named set of pairs sharing an answer/wrong token pair. */
export interface StudyGroup {
  name: string;
  /** One line on what the group varies, shown in the Setup section. */
  description?: string;
  /** Tags by factor (e.g. { cue: "name", distance: "near" }): comparisons are reported per factor. */
  factors?: Record<string, string>;
  /**
   * The group whose texts this one uses with the roles swapped (clean ↔ corrupted, answer ↔ wrong). Its
   * prompts share units with that group: comparisons between the two resample them as pairs, and a
   * quantity that is the same for both by construction is reported once, not tested again.
   */
  mirrorOf?: string;
}

/** SAE features in a study: which SAE, where its training data came from, how many features to confirm. */
export interface StudyFeatures {
  /** An SAELens directory (e.g. a bundled SAE's). */
  sae: string;
  /** What the SAE was trained on, stated in the section (e.g. "the model's own samples"). */
  trainedOn: string;
  /** Features ranked by attribution, then patched exactly, per group. */
  top: number;
  /**
   * Features given a page in the report (the largest by exact patching over the groups); every feature a
   * finding names gets one too.
   */
  pages: number;
  /**
   * A feature index of this SAE (`circuitscope index --sae`) for the pages' top examples, density and
   * histogram; default: a bundled SAE's own (src/sae/bundled-saes.ts), else none.
   */
  index?: string;
}

/** An attribution graph of the focus prompt (circuit-tracer semantics, src/graphs) in a study. */
export interface StudyGraph {
  /** A circuit-tracer transcoder set directory (e.g. the bundled models/stories260k-transcoders). */
  transcoders: string;
  /** What the transcoders were trained on, stated in the section. */
  trainedOn: string;
  /** Features named, by |total effect on logit(answer) − logit(wrong)|. */
  top: number;
  /** token → feature → logit-difference paths named. */
  paths: number;
}

/** A plan: a spec's sizes for this run, with the groups chosen and the seed. */
export interface StudyPlan extends StudySizes {
  quick: boolean;
  seed: number;
  /** Groups to run, the focus group first when it is among them. */
  groups: StudyGroup[];
}

export interface StudySpec {
  /** `circuitscope study <id>`. */
  id: string;
  /** The report's title. */
  title: string;
  /** The question the study answers, in one or two sentences (the report's first paragraph). */
  question: string;
  /** What the prompts and the metric are (Setup section). */
  promptsText: string;
  /** The model used when --model is not given. */
  defaultModel: string;
  groups: readonly StudyGroup[];
  /** The group studied in depth. */
  focusGroup: string;
  /**
   * Groups whose mechanism (per-position patching, each head's output/value/pattern, the heads' attention to
   * the cue) is measured as well as the focus group's, so that a statement about the mechanism is made only
   * for the groups it was measured on (e.g. one group per kind of cue).
   */
  mechanismGroups?: readonly string[];
  /** How many distinct prompts the templates can make for a group (stated next to its intervals). */
  templateCount?(group: StudyGroup): number;
  /** Groups of a --quick run (the focus group is always added). */
  quickGroups?: readonly string[];
  sizes: { full: StudySizes; quick: StudySizes };
  /** `count` distinct pairs per group from templates; the same seed gives the same pairs. */
  generate(groups: readonly StudyGroup[], count: (group: StudyGroup) => number, seed: number): PromptPair[];
  /** Words for the clean and corrupted runs and their difference, in figures and captions. */
  words: {
    clean: string;
    corrupted: string;
    /** The clean - corrupted difference, e.g. "contraction effect". */
    effect: string;
    /** What a group is, for the x axis of the behaviour chart. */
    group: string;
  };
  /**
   * Analyse a group further only when its clean behaviour is there (the interval of the clean logit
   * difference excludes 0); other groups are reported as "the model does not do this".
   */
  requireBehaviour: boolean;
  /**
   * SAE features (optional): which carry the effect, by attribution patching over every feature at every
   * position, then exact patching of the top ones, on the focus group and the mechanism groups.
   */
  features?: StudyFeatures;
  /**
   * Attribution graph (optional): the graph of the focus group's first prompt over the spec's transcoders,
   * its page written into the report, the features and paths that carry the answer − wrong difference named.
   */
  graph?: StudyGraph;
  /** The figure that sums the study up: also written as figures/NAME.png (e.g. for a README). */
  mainFigure?: string;
}

/** The plan of a run: full or quick sizes, the chosen groups (by name; default all or the quick set). */
export function planFor(
  spec: StudySpec,
  opts: { quick?: boolean; seed?: number; groups?: string[] } = {},
): StudyPlan {
  const quick = opts.quick ?? false;
  const names =
    opts.groups ?? (quick && spec.quickGroups ? [...spec.quickGroups] : spec.groups.map((g) => g.name));
  let groups = selectGroups(spec, names);
  if (!groups.some((g) => g.name === spec.focusGroup))
    groups = [...selectGroups(spec, [spec.focusGroup]), ...groups];
  return { ...(quick ? spec.sizes.quick : spec.sizes.full), quick, seed: opts.seed ?? 0, groups };
}

/** Groups by name; an unknown name is an error listing the known ones. */
export function selectGroups(spec: Pick<StudySpec, "groups" | "id">, names: readonly string[]): StudyGroup[] {
  return names.map((n) => {
    const g = spec.groups.find((x) => x.name === n);
    if (!g) {
      throw new Error(
        `Unknown group ${JSON.stringify(n)} for study ${spec.id}; the groups are: ${spec.groups.map((x) => x.name).join(", ")}.`,
      );
    }
    return g;
  });
}
