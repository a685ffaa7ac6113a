/**
 * The contraction study: after an earlier contraction GPT-2 keeps contracting ("We're helping our friend
 * while they" → "'re", not " are"). Sizes: the full run targets < 30 min for GPT-2 small on 2 cores,
 * --quick < 3 min.
 */
import type { StudySpec } from "../spec.ts";
import { allGroups, type ContractionGroup, FOCUS_GROUP } from "./groups.ts";
import { generatePrompts } from "./templates.ts";

const groups = allGroups();

export const contractionsSpec: StudySpec = {
  id: "contractions",
  title: "How GPT-2 predicts contractions",
  question:
    'After an earlier contraction, does the model keep contracting ("We\'re helping our friend while they" → \'re rather than " are"), and which components carry the earlier contraction to the final pronoun?',
  promptsText: `Each clean prompt uses a contraction early ("We're helping our friend while they"); its corrupted twin uses the full form ("We are ..."), same token length. The answer is the contraction fitting the final pronoun ('re / 's), the wrong token the full verb (" are" / " is"). The metric is logit(answer) - logit(wrong) at the final position.`,
  defaultModel: "gpt2",
  groups,
  focusGroup: FOCUS_GROUP,
  // Both answers, both earlier forms that match them, and a mismatched pair.
  quickGroups: ["'re/they", "'re/he", "'s/he", "'s/they", "'m/you", "'ll/she"],
  sizes: {
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
  },
  generate: (chosen, count, seed) =>
    generatePrompts(
      chosen.map((g) => groups.find((x) => x.name === g.name) as ContractionGroup),
      count,
      seed,
    ),
  words: {
    clean: "clean (contraction earlier)",
    corrupted: "corrupted (full form earlier)",
    effect: "contraction effect",
    group: "group (earlier contraction / final pronoun)",
  },
  requireBehaviour: false,
  mainFigure: "focus-position-patching-resid_pre",
};
