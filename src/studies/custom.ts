/**
 * `study custom --prompts pairs.jsonl`: the shared pipeline on a user's pairs, with the groups the file
 * names (the first group, or --focus, studied in depth).
 */
import { byGroup, readPromptFile } from "./prompts.ts";
import { DEFAULT_SIZES, type StudySpec } from "./spec.ts";

/** Sizes for a user's pairs: every pair is used (the file decides how many); the rest bound the in-depth work. */
const SIZES = {
  full: { ...DEFAULT_SIZES.full, perGroup: 0, focusPrompts: 0 },
  quick: { ...DEFAULT_SIZES.quick, perGroup: 0, focusPrompts: 0 },
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
