/**
 * The experimental groups: an earlier contraction paired with a final pronoun. The model should
 * continue the final pronoun with the contraction that fits it ('re after they/we/you, 's after
 * he/she/it) rather than the full verb (" are" / " is").
 */
import type { StudyGroup } from "../spec.ts";

/** An earlier contraction, the full form it replaces (same token count), and the subjects it can follow. */
export interface ContractionForm {
  /** The contraction token, e.g. "'re". */
  contraction: string;
  /** The full form replacing it in the corrupted prompt, with its leading space, e.g. " are". */
  full: string;
  /** Sentence-initial subjects the contraction attaches to ("We" + "'re"). */
  subjects: readonly string[];
  /** Words between the verb form and the -ing verb so the sentence stays grammatical ("'ve" → "been"). */
  auxiliary: string;
}

export const CONTRACTIONS: readonly ContractionForm[] = [
  { contraction: "'re", full: " are", subjects: ["We", "They", "You"], auxiliary: "" },
  { contraction: "'s", full: " is", subjects: ["He", "She"], auxiliary: "" },
  { contraction: "'m", full: " am", subjects: ["I"], auxiliary: "" },
  { contraction: "'ve", full: " have", subjects: ["We", "They", "You", "I"], auxiliary: " been" },
  { contraction: "'ll", full: " will", subjects: ["We", "They", "You", "I", "He", "She"], auxiliary: " be" },
  { contraction: "'d", full: " would", subjects: ["We", "They", "You", "I", "He", "She"], auxiliary: " be" },
];

/** A final pronoun and the answer (contraction) and wrong (full verb) tokens that follow it. */
export interface FinalPronoun {
  pronoun: string;
  answer: string;
  wrong: string;
}

export const FINAL_PRONOUNS: readonly FinalPronoun[] = [
  { pronoun: "they", answer: "'re", wrong: " are" },
  { pronoun: "we", answer: "'re", wrong: " are" },
  { pronoun: "you", answer: "'re", wrong: " are" },
  { pronoun: "he", answer: "'s", wrong: " is" },
  { pronoun: "she", answer: "'s", wrong: " is" },
  { pronoun: "it", answer: "'s", wrong: " is" },
];

export interface ContractionGroup extends StudyGroup {
  /** "'re/they": earlier contraction / final pronoun. */
  name: string;
  form: ContractionForm;
  final: FinalPronoun;
}

export function groupName(contraction: string, pronoun: string): string {
  return `${contraction}/${pronoun}`;
}

/** The group studied in depth in experiment 1, as in the original research. */
export const FOCUS_GROUP = groupName("'re", "they");

/** Every contraction x pronoun group, in a stable order (contractions outer). */
export function allGroups(): ContractionGroup[] {
  return CONTRACTIONS.flatMap((form) =>
    FINAL_PRONOUNS.map((final) => ({ name: groupName(form.contraction, final.pronoun), form, final })),
  );
}
