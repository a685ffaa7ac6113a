/**
 * The contraction study: after an earlier contraction GPT-2 keeps contracting ("We're helping our friend
 * while they" → "'re", not " are").
 */
import { DEFAULT_SIZES, type StudySpec } from "../spec.ts";
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
  sizes: DEFAULT_SIZES,
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
