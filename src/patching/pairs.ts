/** Clean/corrupted prompt pairs: tokenised and checked to be of equal token length pairwise. */
import type { HookedTransformer } from "../model/hooked-transformer.ts";
import type { TokenizeOptions } from "../tokenizer/tokenizer.ts";

export type PromptList = readonly string[] | readonly (readonly number[])[];

export interface PromptPairs {
  clean: number[][];
  corrupted: number[][];
  /** Real length of pair b (equal for its clean and corrupted prompt). */
  lengths: number[];
  /** Longest pair: the position axis of [layer, pos] results. */
  nPos: number;
}

function toLists(model: HookedTransformer, list: PromptList, opts: TokenizeOptions): number[][] {
  return list.map((p) => (typeof p === "string" ? model.toTokens(p, opts) : [...p]));
}

export function preparePairs(
  model: HookedTransformer,
  clean: PromptList,
  corrupted: PromptList,
  opts: TokenizeOptions = {},
): PromptPairs {
  if (clean.length === 0) throw new Error("No prompts: give at least one clean/corrupted pair");
  if (clean.length !== corrupted.length) {
    throw new Error(
      `${clean.length} clean prompts but ${corrupted.length} corrupted prompts: give them in pairs (one corrupted prompt per clean prompt)`,
    );
  }
  const c = toLists(model, clean, opts);
  const x = toLists(model, corrupted, opts);
  const show = (p: string | readonly number[]) =>
    typeof p === "string" ? JSON.stringify(p) : `[${p.join(", ")}]`;
  c.forEach((toks, i) => {
    if (toks.length !== x[i].length) {
      throw new Error(
        `${pairName(i, c.length)}: the clean prompt ${show(clean[i])} is ${toks.length} tokens but the corrupted prompt ${show(corrupted[i])} is ${x[i].length} tokens. ` +
          "Patching needs each pair to have the same token length: reword one of the two so their tokens line up.",
      );
    }
    if (toks.every((t, j) => t === x[i][j])) {
      throw new Error(
        `${pairName(i, c.length)}: the clean and corrupted prompts are identical (${show(clean[i])}), so there is no ` +
          "difference for patching to restore (the normalised metric would divide by zero): give a corrupted prompt that differs.",
      );
    }
  });
  // Validates lengths against the context and ids against the vocabulary, with clear errors.
  model.prepare(c);
  model.prepare(x);
  const lengths = c.map((t) => t.length);
  return { clean: c, corrupted: x, lengths, nPos: Math.max(...lengths) };
}

/** "The pair" for a single pair, "Pair i" in a batch. */
function pairName(i: number, n: number): string {
  return n === 1 ? "The prompt pair" : `Pair ${i}`;
}

/** The vocabulary id of a one-token answer; the error names the option it came from. */
export function answerToken(model: HookedTransformer, text: string, option: string): number {
  try {
    return model.toSingleToken(text);
  } catch (err) {
    throw new Error(`${option}: ${err instanceof Error ? err.message : String(err)}`);
  }
}
