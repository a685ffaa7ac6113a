/**
 * `study custom --prompts pairs.jsonl`: the shared pipeline on a user's pairs, with the groups the file
 * names (the first group, or --focus, studied in depth).
 */
import { byGroup, readPromptFile } from "./prompts.ts";
import type { StudySizes, StudySpec } from "./spec.ts";

/** Sizes for a user's pairs: every pair is used (the file decides how many); these bound the in-depth work. */
const SIZES: { full: StudySizes; quick: StudySizes } = {
  full: {
    perGroup: 0,
    focusPrompts: 0,
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
    perGroup: 0,
    focusPrompts: 0,
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

export function customSpec(promptFile: string, opts: { focus?: string; model: string }): StudySpec {
  const names = [...byGroup(readPromptFile(promptFile)).keys()];
  const focus = opts.focus ?? names[0];
  if (!names.includes(focus)) {
    throw new Error(
      `--focus ${JSON.stringify(focus)} is not a group of ${promptFile}; its groups are: ${names.join(", ")}.`,
    );
  }
  return {
    id: "custom",
    title: `Study of ${promptFile}`,
    question: `How does the model tell each clean prompt of ${promptFile} from its corrupted twin, and which components carry the difference to the final position?`,
    promptsText: `The pairs of ${promptFile}: each clean prompt and its corrupted twin have the same token length; the metric is logit(answer) - logit(wrong) at the final position.`,
    defaultModel: opts.model,
    groups: names.map((name) => ({ name })),
    focusGroup: focus,
    sizes: SIZES,
    generate: () => {
      throw new Error("a custom study reads its pairs from --prompts; it has no templates");
    },
    words: { clean: "clean", corrupted: "corrupted", effect: "effect", group: "group" },
    requireBehaviour: false,
  };
}
