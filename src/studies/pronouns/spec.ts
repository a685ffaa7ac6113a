/**
 * The pronoun study on the bundled stories260k model: how does the model carry a character's gender from
 * the noun or name to the pronoun it predicts? Clean and corrupted prompts differ only in the gender cue
 * ("a girl" / "a boy", "Lily" / "Tim"); both directions are groups of their own.
 */
import { fileURLToPath } from "node:url";
import { groupRandom, type PromptPair } from "../prompts.ts";
import { DEFAULT_SIZES, type StudyGroup, type StudySizes, type StudySpec } from "../spec.ts";

type Cue = "noun" | "name" | "both";
type Form = "mid" | "initial" | "possessive";
type Direction = "girl" | "boy";

interface PronounGroup extends StudyGroup {
  cue: Cue;
  /** Neutral sentences between the cue sentence and the pronoun. */
  distance: 0 | 1 | 2;
  form: Form;
  direction: Direction;
}

/** The answer and wrong token of each form, for a girl (she) clean prompt; a boy prompt swaps them. */
const FORMS: Record<Form, { she: string; he: string; what: string }> = {
  mid: { she: " she", he: " he", what: '" she"/" he" mid-sentence' },
  initial: { she: " She", he: " He", what: '"She"/"He" starting a sentence' },
  possessive: { she: " her", he: " his", what: '" her"/" his" (possessive)' },
};

const CUES: Record<Cue, { girl: (adj: string) => string; boy: (adj: string) => string; what: string }> = {
  noun: {
    girl: (adj) => `a ${adj}girl`,
    boy: (adj) => `a ${adj}boy`,
    what: 'noun only ("a girl" / "a boy")',
  },
  name: { girl: () => "Lily", boy: () => "Tim", what: 'name only ("Lily" / "Tim")' },
  both: {
    girl: (adj) => `a ${adj}girl named Lily`,
    boy: (adj) => `a ${adj}boy named Tim`,
    what: 'noun and name ("a little girl named Lily" / "a little boy named Tim")',
  },
};

/*
 * Template pieces. Within each list every piece is the same number of stories260k tokens, so every prompt of
 * a group has the same token layout (the cue at the same positions) and per-position results average over
 * prompts. The sentence-initial group ends at the cue sentence, so it draws on longer lists for variety.
 */
const OPENINGS = ["There was", "Once there was"];
const ADJECTIVES = ["little ", "happy ", "big "];
const CONTINUATIONS = [
  "The next day,",
  "One morning,",
  "Each day,",
  "One night,",
  "One evening,",
  "One winter,",
  "One Sunday,",
  "The other day,",
  "Later that day,",
];
const NAME_OPENINGS = ["Once upon a time,", "Today,"];
const NAME_PREDICATES = ["liked to play", "had a toy", "saw a cat", "had a ball"];
const NEUTRAL = ["It was a nice day.", "The birds sang.", "The day was bright.", "The wind was cold."];
const AGENTS = ["a dog", "a cat"];
const VERBS = ["found", "took", "ate"];
/** Openings and adjectives of the sentence-initial group (a layout per combination of lengths). */
const INITIAL_OPENINGS = [
  "There was",
  "Once there was",
  "Once upon a time, there was",
  "One day, there was",
  "There once was",
];
const INITIAL_ADJECTIVES = ["", "little ", "happy ", "big ", "kind ", "small "];

function group(cue: Cue, distance: 0 | 1 | 2, form: Form, direction: Direction): PronounGroup {
  const f = FORMS[form];
  const distanceName = distance === 0 ? "near" : `${distance}sent`;
  const name = (d: Direction) => `${cue}-${distanceName}-${(d === "girl" ? f.she : f.he).trim()}`;
  return {
    name: name(direction),
    // A boy group is its girl group's texts with the roles swapped (see `generate`).
    ...(direction === "boy" ? { mirrorOf: name("girl") } : {}),
    description: `${direction} clean (the ${direction === "girl" ? "boy" : "girl"} version corrupted); cue ${CUES[cue].what}; ${distance === 0 ? "pronoun right after the cue sentence" : `${distance} neutral sentence(s) between cue and pronoun`}; ${f.what}`,
    factors: { cue, distance: distanceName, form, direction },
    cue,
    distance,
    form,
    direction,
  };
}

const GROUPS: PronounGroup[] = (["girl", "boy"] as const).flatMap((d) => [
  group("noun", 0, "mid", d),
  group("name", 0, "mid", d),
  group("both", 0, "mid", d),
  group("noun", 1, "mid", d),
  group("noun", 2, "mid", d),
  group("noun", 0, "initial", d),
  group("noun", 0, "possessive", d),
]);

/** One filling of a group's template, as the girl and boy texts (the same words but the cue). */
function fill(g: PronounGroup, rand: () => number): { girl: string; boy: string } {
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)];
  // Every choice is drawn once, so the girl and boy texts differ only in the cue.
  const initial = g.form === "initial";
  const adj = g.cue === "name" ? "" : pick(initial ? INITIAL_ADJECTIVES : ADJECTIVES);
  const opening = pick(g.cue === "name" ? NAME_OPENINGS : initial ? INITIAL_OPENINGS : OPENINGS);
  const predicate = pick(NAME_PREDICATES);
  const neutral: string[] = [];
  while (neutral.length < g.distance) {
    const s = pick(NEUTRAL);
    if (!neutral.includes(s)) neutral.push(s);
  }
  const tail =
    g.form === "initial"
      ? ""
      : g.form === "mid"
        ? ` ${pick(CONTINUATIONS)}`
        : ` ${pick(CONTINUATIONS)} ${pick(AGENTS)} ${pick(VERBS)}`;
  const text = (d: Direction) => {
    const cue =
      g.cue === "name"
        ? `${opening} ${CUES.name[d]("")} ${predicate}.`
        : `${opening} ${CUES[g.cue][d](adj)}.`;
    return [cue, ...neutral].join(" ") + tail;
  };
  return { girl: text("girl"), boy: text("boy") };
}

function generate(
  groups: readonly StudyGroup[],
  count: (g: StudyGroup) => number,
  seed: number,
): PromptPair[] {
  const out: PromptPair[] = [];
  for (const sg of groups) {
    const g = GROUPS.find((x) => x.name === sg.name)!;
    // A mirror draws its original's stream: the same texts, clean and corrupted swapped.
    const rand = groupRandom(seed, g.mirrorOf ?? g.name);
    const f = FORMS[g.form];
    const n = count(g);
    const seen = new Set<string>();
    for (let tries = 0; seen.size < n && tries < 50 * n; tries++) {
      const { girl, boy } = fill(g, rand);
      const clean = g.direction === "girl" ? girl : boy;
      if (seen.has(clean)) continue;
      seen.add(clean);
      out.push({
        clean,
        corrupted: g.direction === "girl" ? boy : girl,
        answer: g.direction === "girl" ? f.she : f.he,
        wrong: g.direction === "girl" ? f.he : f.she,
        group: g.name,
      });
    }
  }
  return out;
}

/** The number of distinct texts `fill` can make for a group: the product of its choices. */
function templateCount(sg: StudyGroup): number {
  const g = GROUPS.find((x) => x.name === sg.name)!;
  const initial = g.form === "initial";
  const cue =
    g.cue === "name"
      ? NAME_OPENINGS.length * NAME_PREDICATES.length
      : (initial ? INITIAL_OPENINGS : OPENINGS).length * (initial ? INITIAL_ADJECTIVES : ADJECTIVES).length;
  // Neutral sentences are distinct and ordered.
  let neutral = 1;
  for (let k = 0; k < g.distance; k++) neutral *= NEUTRAL.length - k;
  const tail =
    g.form === "initial"
      ? 1
      : g.form === "mid"
        ? CONTINUATIONS.length
        : CONTINUATIONS.length * AGENTS.length * VERBS.length;
  return cue * neutral * tail;
}

const FULL: StudySizes = {
  ...DEFAULT_SIZES.full,
  perGroup: 24,
  // 24 of the focus group's 54 distinct texts (2 openings x 3 adjectives x 9 continuations).
  focusPrompts: 24,
  positionPrompts: 24,
};

const QUICK: StudySizes = {
  ...DEFAULT_SIZES.quick,
  perGroup: 10,
  focusPrompts: 12,
  positionPrompts: 12,
  exactNeurons: 8,
  exactHeads: 4,
};

export const pronounsSpec: StudySpec = {
  id: "pronouns",
  title: "How stories260k carries a character's gender to the pronoun",
  question:
    'How does the model carry a character\'s gender from the noun or name ("a girl", "Lily") to the pronoun it predicts (" she" rather than " he")? Which layers and positions carry it, which heads move it from the cue to the final position, and how does this change with the kind of cue, the distance and the pronoun\'s form?',
  promptsText:
    'Each clean prompt introduces a character by a gender cue and stops where a pronoun should follow ("There was a little girl. One day," → " she"); its corrupted twin is the same text with the other gender\'s cue ("a little boy"), the same number of tokens. The answer is the pronoun of the clean prompt\'s gender, the wrong token the other gender\'s (" she" vs " he", " She" vs " He", " her" vs " his"); both directions (girl clean, boy clean) are separate groups. The metric is logit(answer) - logit(wrong) at the final position.',
  defaultModel: "stories260k",
  groups: GROUPS,
  focusGroup: "noun-near-she",
  // One group per kind of cue: the mechanism is measured on each, and stated only for those it was measured on.
  mechanismGroups: ["noun-near-she", "name-near-she", "both-near-she"],
  templateCount,
  quickGroups: [
    "noun-near-she",
    "noun-near-he",
    "name-near-she",
    "both-near-she",
    "noun-2sent-she",
    "noun-near-She",
    "noun-near-her",
  ],
  sizes: { full: FULL, quick: QUICK },
  generate,
  words: {
    clean: "clean (the clean prompt's gender)",
    corrupted: "corrupted (the other gender's cue)",
    effect: "gender effect",
    group: "group (cue-distance-pronoun)",
  },
  requireBehaviour: true,
  mainFigure: "focus-position-patching-resid_pre",
  features: {
    sae: fileURLToPath(new URL("../../../models/stories260k-saes/blocks.2.hook_resid_pre", import.meta.url)),
    trainedOn:
      "140k tokens of stories sampled from stories260k itself (models/stories260k-saes/README.md): the model's own distribution, since TinyStories cannot be downloaded offline, so a feature is a direction of what the model writes, not of TinyStories' text",
    top: 8,
    pages: 3,
  },
  graph: {
    transcoders: fileURLToPath(new URL("../../../models/stories260k-transcoders", import.meta.url)),
    trainedOn:
      "140k tokens of stories sampled from stories260k itself (models/stories260k-transcoders/README.md): the model's own distribution, so a feature is a direction of what the model writes, not of TinyStories' text",
    top: 5,
    paths: 5,
  },
};
