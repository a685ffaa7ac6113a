/**
 * Prompt pairs of a study: generated from a spec's templates with a fixed seed, or read from a user's
 * file; every pair validated against the tokenizer (single-token answers, equal lengths, the expected
 * final token) with the reason recorded for each dropped pair.
 */
import type { Tokenizer } from "../tokenizer/tokenizer.ts";
import { mulberry32 } from "../util/random.ts";
import { readUtf8File } from "../util/text-file.ts";

/** A clean/corrupted prompt pair: the same text except for the cue the study is about. */
export interface PromptPair {
  clean: string;
  corrupted: string;
  /** The expected next token after `clean` (e.g. "'re"). */
  answer: string;
  /** The competing token (e.g. " are"). */
  wrong: string;
  group: string;
  /** The final token's text, when known (generated prompts): validation checks the prompt ends with it. */
  finalToken?: string;
  /** What each token position holds, when known (generated prompts): validation checks the token count. */
  roles?: string[];
}

/** A pair that passed validation, with its tokens (BOS prepended). */
export interface ValidatedPair extends PromptPair {
  cleanTokens: number[];
  corruptedTokens: number[];
  answerToken: number;
  wrongToken: number;
  /** Token positions where clean and corrupted differ. */
  diffPositions: number[];
}

export interface DroppedPair {
  pair: PromptPair;
  reason: string;
}

export interface PromptSet {
  kept: ValidatedPair[];
  dropped: DroppedPair[];
}

/** A 32-bit FNV-1a hash, to give each group its own seed stream. */
function hashString(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

/**
 * A random stream of its own for each group, seeded by (seed, group name): a group's prompts do not depend
 * on which other groups are generated.
 */
export function groupRandom(seed: number, group: string): () => number {
  return mulberry32((seed ^ hashString(group)) >>> 0);
}

export interface ValidateOptions {
  /** Longest allowed prompt in tokens, BOS included (the model's context length). */
  maxTokens?: number;
}

function singleToken(tok: Tokenizer, text: string): number | string {
  try {
    return tok.toSingleToken(text);
  } catch (e) {
    return (e as Error).message;
  }
}

/** Why a pair is unusable, or its validated form. */
export function validatePair(
  pair: PromptPair,
  tok: Tokenizer,
  opts: ValidateOptions = {},
): ValidatedPair | string {
  const answerToken = singleToken(tok, pair.answer);
  if (typeof answerToken === "string") return `answer ${answerToken}`;
  const wrongToken = singleToken(tok, pair.wrong);
  if (typeof wrongToken === "string") return `wrong token ${wrongToken}`;
  if (answerToken === wrongToken) return "answer and wrong token are the same token";
  const cleanTokens = tok.toTokens(pair.clean);
  const corruptedTokens = tok.toTokens(pair.corrupted);
  if (cleanTokens.length !== corruptedTokens.length) {
    return `clean is ${cleanTokens.length} tokens but corrupted is ${corruptedTokens.length}; they must be the same length`;
  }
  if (pair.roles !== undefined && pair.roles.length !== cleanTokens.length) {
    return `${cleanTokens.length} tokens but the template has ${pair.roles.length} positions (${pair.roles.join(" ")})`;
  }
  if (opts.maxTokens !== undefined && cleanTokens.length > opts.maxTokens) {
    return `${cleanTokens.length} tokens exceeds the model's context of ${opts.maxTokens}`;
  }
  const diffPositions: number[] = [];
  cleanTokens.forEach((t, i) => {
    if (t !== corruptedTokens[i]) diffPositions.push(i);
  });
  if (diffPositions.length === 0) return "clean and corrupted prompts are the same tokens";
  const last = cleanTokens.length - 1;
  if (diffPositions.includes(last)) return "clean and corrupted prompts end with different tokens";
  if (pair.finalToken !== undefined) {
    const finalText = tok.decode([cleanTokens[last]]);
    if (finalText !== pair.finalToken) {
      return `final token is ${JSON.stringify(finalText)}, not ${JSON.stringify(pair.finalToken)}`;
    }
  }
  return { ...pair, cleanTokens, corruptedTokens, answerToken, wrongToken, diffPositions };
}

/** Validate every pair; duplicates (same clean prompt within a group) are dropped too. */
export function validatePairs(
  pairs: readonly PromptPair[],
  tok: Tokenizer,
  opts: ValidateOptions = {},
): PromptSet {
  const kept: ValidatedPair[] = [];
  const dropped: DroppedPair[] = [];
  const seen = new Set<string>();
  for (const pair of pairs) {
    const key = `${pair.group}\u0000${pair.clean}`;
    if (seen.has(key)) {
      dropped.push({ pair, reason: "duplicate of an earlier prompt in the same group" });
      continue;
    }
    seen.add(key);
    const v = validatePair(pair, tok, opts);
    if (typeof v === "string") dropped.push({ pair, reason: v });
    else kept.push(v);
  }
  return { kept, dropped };
}

/**
 * The prompts two groups share, as [index in a, index in b]: the same pair, or the same texts with clean
 * and corrupted swapped (a mirror group). Such prompts are one measurement seen twice, not two draws.
 */
export function sharedUnits(
  a: readonly Pick<PromptPair, "clean" | "corrupted">[],
  b: readonly Pick<PromptPair, "clean" | "corrupted">[],
): [number, number][] {
  const inB = new Map<string, number>();
  b.forEach((p, j) => {
    inB.set(`${p.clean}\u0000${p.corrupted}`, j);
    inB.set(`${p.corrupted}\u0000${p.clean}`, j);
  });
  return a.flatMap((p, i) => {
    const j = inB.get(`${p.clean}\u0000${p.corrupted}`);
    return j === undefined ? [] : [[i, j] as [number, number]];
  });
}

/** Group names in first-seen order, with their pairs. */
export function byGroup<T extends { group: string }>(pairs: readonly T[]): Map<string, T[]> {
  const m = new Map<string, T[]>();
  for (const p of pairs) {
    const list = m.get(p.group);
    if (list) list.push(p);
    else m.set(p.group, [p]);
  }
  return m;
}

const REQUIRED_FIELDS = ["clean", "corrupted", "answer", "wrong", "group"] as const;

function toPair(value: unknown, where: string): PromptPair {
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new Error(`${where}: expected an object with fields ${REQUIRED_FIELDS.join(", ")}.`);
  }
  const o = value as Record<string, unknown>;
  for (const f of REQUIRED_FIELDS) {
    if (typeof o[f] !== "string" || o[f] === "") {
      throw new Error(
        `${where}: field "${f}" is missing or not a non-empty string. Each prompt needs ${REQUIRED_FIELDS.join(", ")} ` +
          `(e.g. {"clean":"We're here while they","corrupted":"We are here while they","answer":"'re","wrong":" are","group":"'re/they"}).`,
      );
    }
  }
  if (o.clean === o.corrupted) {
    throw new Error(
      `${where}: the clean and corrupted prompts are identical (${JSON.stringify(o.clean)}), so patching has nothing to restore; make the corrupted prompt differ.`,
    );
  }
  if (o.finalToken !== undefined && typeof o.finalToken !== "string") {
    throw new Error(`${where}: field "finalToken" must be a string when given.`);
  }
  const pair: PromptPair = {
    clean: o.clean as string,
    corrupted: o.corrupted as string,
    answer: o.answer as string,
    wrong: o.wrong as string,
    group: o.group as string,
  };
  if (typeof o.finalToken === "string") pair.finalToken = o.finalToken;
  return pair;
}

/** Parse a prompt file's text: a JSON array of pairs, or JSONL (one pair per line). */
export function parsePromptFile(text: string, fileName = "prompt file"): PromptPair[] {
  const trimmed = text.trim();
  if (trimmed === "") throw new Error(`${fileName} is empty; give a JSON array or JSONL of prompt pairs.`);
  if (trimmed.startsWith("[")) {
    let parsed: unknown;
    try {
      parsed = JSON.parse(trimmed);
    } catch (e) {
      throw new Error(`${fileName} starts with "[" but is not valid JSON (${(e as Error).message}).`);
    }
    return (parsed as unknown[]).map((v, i) => toPair(v, `${fileName} item ${i}`));
  }
  const pairs: PromptPair[] = [];
  trimmed.split(/\r?\n/).forEach((line, i) => {
    if (line.trim() === "") return;
    let parsed: unknown;
    try {
      parsed = JSON.parse(line);
    } catch (e) {
      throw new Error(
        `${fileName} line ${i + 1} is not valid JSON (${(e as Error).message}); JSONL needs one object per line.`,
      );
    }
    pairs.push(toPair(parsed, `${fileName} line ${i + 1}`));
  });
  return pairs;
}

export function readPromptFile(path: string): PromptPair[] {
  let text: string;
  try {
    text = readUtf8File(path, "Prompt file");
  } catch (e) {
    if (!(e as NodeJS.ErrnoException).code) throw e;
    throw new Error(
      `Cannot read prompt file ${path} (${(e as NodeJS.ErrnoException).code ?? e}); check the path.`,
    );
  }
  return parsePromptFile(text, path);
}
