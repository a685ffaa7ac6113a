/**
 * How much of the study to run: prompt counts, how many candidates exact patching confirms, bootstrap
 * resamples. The full plan targets < 30 min for GPT-2 small on 2 cores; `quick` < 3 min.
 */
import { allGroups, FOCUS_GROUP, type GroupSpec, selectGroups } from "./groups.ts";

export interface StudyPlan {
  quick: boolean;
  seed: number;
  /** Generated prompts per group (experiment 2). */
  perGroup: number;
  /** Generated prompts of the focus group for experiment 1 (a superset of its experiment-2 prompts). */
  focusPrompts: number;
  /** Prompts of the focus group used for per-position patching (layers x positions x components forwards each). */
  positionPrompts: number;
  /** Groups of experiment 2 (the focus group is always included). */
  groups: GroupSpec[];
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
  /** Layer components (attn/mlp x layer) confirmed exactly per group in experiment 2. */
  exactComponentsPerGroup: number;
  /** Bootstrap resamples for every interval and test. */
  resamples: number;
  /** Prompts per forward batch. */
  batchSize: number;
}

/** The quick groups: both answers, both earlier forms that match them, and a mismatched pair. */
const QUICK_GROUPS = ["'re/they", "'re/he", "'s/he", "'s/they", "'m/you", "'ll/she"];

export function makePlan(opts: { quick?: boolean; seed?: number; groups?: string[] } = {}): StudyPlan {
  const quick = opts.quick ?? false;
  let groups = opts.groups ? selectGroups(opts.groups) : quick ? selectGroups(QUICK_GROUPS) : allGroups();
  if (!groups.some((g) => g.name === FOCUS_GROUP)) groups = [...selectGroups([FOCUS_GROUP]), ...groups];
  return quick
    ? {
        quick,
        seed: opts.seed ?? 0,
        perGroup: 8,
        focusPrompts: 12,
        positionPrompts: 4,
        groups,
        topHeads: 3,
        attentionExamples: 2,
        neuronLayers: 1,
        exactNeurons: 5,
        neuronPages: 2,
        exactHeads: 3,
        exactComponentsPerGroup: 3,
        resamples: 1000,
        batchSize: 16,
      }
    : {
        quick,
        seed: opts.seed ?? 0,
        perGroup: 20,
        focusPrompts: 40,
        positionPrompts: 12,
        groups,
        topHeads: 5,
        attentionExamples: 3,
        neuronLayers: 2,
        exactNeurons: 20,
        neuronPages: 3,
        exactHeads: 10,
        exactComponentsPerGroup: 6,
        resamples: 2000,
        batchSize: 32,
      };
}
