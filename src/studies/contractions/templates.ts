/**
 * The contraction study's prompt templates: subject + contraction (or full form) + -ing verb + object +
 * connective + final pronoun, filled from small vocabularies with a seed.
 */
import { groupRandom, type PromptPair } from "../prompts.ts";
import type { ContractionGroup } from "./groups.ts";

/** Template vocabulary: varied -ing verbs, objects and connectives. */
export const TEMPLATE_VERBS: readonly string[] = [
  "helping",
  "visiting",
  "calling",
  "watching",
  "meeting",
  "teaching",
  "driving",
  "feeding",
  "thanking",
  "supporting",
  "joining",
  "following",
  "inviting",
  "training",
];
/** Objects of exactly two tokens, so every prompt of a group has the same positions (see `positionRoles`). */
export const TEMPLATE_OBJECTS: readonly string[] = [
  "our friend",
  "the neighbors",
  "my sister",
  "their teacher",
  "the kids",
  "his brother",
  "her parents",
  "a colleague",
  "your cousin",
  "the team",
  "the doctor",
  "my boss",
  "the children",
  "our guests",
  "the players",
  "my uncle",
];
/** Single-token connectives. */
export const TEMPLATE_CONNECTIVES: readonly string[] = [
  "while",
  "because",
  "and",
  "but",
  "since",
  "although",
  "so",
  "whenever",
  "when",
  "though",
  "if",
  "until",
];

/**
 * What each token position of a group's generated prompts holds (BOS included). Template pieces are
 * chosen so every prompt of a group tokenizes to exactly these positions, which lets per-position
 * results be averaged over prompts; validation checks it.
 */
export function positionRoles(group: ContractionGroup): string[] {
  return [
    "<BOS>",
    "subject",
    "contraction",
    ...(group.form.auxiliary ? ["auxiliary"] : []),
    "verb",
    "object",
    "object₂",
    "connective",
    "pronoun",
  ];
}

/** The clean and corrupted sentences of one template filling. */
export function fillTemplate(
  group: ContractionGroup,
  subject: string,
  verb: string,
  object: string,
  connective: string,
): { clean: string; corrupted: string } {
  const rest = `${group.form.auxiliary} ${verb} ${object} ${connective} ${group.final.pronoun}`;
  return {
    clean: `${subject}${group.form.contraction}${rest}`,
    corrupted: `${subject}${group.form.full}${rest}`,
  };
}

/**
 * `perGroup` distinct prompt pairs per group, drawn from the templates. Each group draws from its own
 * stream seeded by (seed, group name), so a group's prompts do not depend on which other groups are
 * generated, and the first k prompts are the same whatever `perGroup` is (quick runs are a prefix).
 */
export function generatePrompts(
  groups: readonly ContractionGroup[],
  perGroup: number | ((group: ContractionGroup) => number),
  seed: number,
): PromptPair[] {
  const out: PromptPair[] = [];
  for (const group of groups) {
    const count = typeof perGroup === "number" ? perGroup : perGroup(group);
    if (!Number.isInteger(count) || count < 1) {
      throw new Error(`perGroup must be a positive integer, got ${count}.`);
    }
    const rand = groupRandom(seed, group.name);
    const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)];
    const seen = new Set<string>();
    const capacity =
      group.form.subjects.length *
      TEMPLATE_VERBS.length *
      TEMPLATE_OBJECTS.length *
      TEMPLATE_CONNECTIVES.length;
    if (count > capacity) {
      throw new Error(
        `perGroup ${count} exceeds the ${capacity} distinct prompts group ${group.name} allows.`,
      );
    }
    while (seen.size < count) {
      const { clean, corrupted } = fillTemplate(
        group,
        pick(group.form.subjects),
        pick(TEMPLATE_VERBS),
        pick(TEMPLATE_OBJECTS),
        pick(TEMPLATE_CONNECTIVES),
      );
      if (seen.has(clean)) continue;
      seen.add(clean);
      out.push({
        clean,
        corrupted,
        answer: group.final.answer,
        wrong: group.final.wrong,
        group: group.name,
        finalToken: ` ${group.final.pronoun}`,
        roles: positionRoles(group),
      });
    }
  }
  return out;
}
