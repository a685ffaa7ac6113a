import type { TokenizeOptions, Tokenizer } from "../tokenizer/tokenizer.ts";

/** What `run` and friends accept: text, several texts, or token lists (BOS already included). */
export type ModelInput = string | readonly string[] | readonly (readonly number[])[];

/** A right-padded batch. Right padding plus the causal mask means real positions never see pads. */
export interface PaddedBatch {
  tokens: Int32Array; // [batch, pos]
  batch: number;
  pos: number;
  lengths: number[]; // real tokens per prompt
  tokenLists: number[][];
}

export function isTokenLists(input: ModelInput): input is readonly (readonly number[])[] {
  return Array.isArray(input) && input.length > 0 && Array.isArray(input[0]);
}

export function toTokenLists(
  input: ModelInput,
  tokenizer: Tokenizer,
  opts: TokenizeOptions = {},
): number[][] {
  if (typeof input === "string") return [tokenizer.toTokens(input, opts)];
  if (!Array.isArray(input) || input.length === 0)
    throw new Error("Model input is empty: give a prompt or a list of prompts");
  if (isTokenLists(input)) return input.map((t) => [...t]);
  return (input as readonly string[]).map((t) => {
    if (typeof t !== "string")
      throw new Error("Model input must be a string, a list of strings, or a list of token-id lists");
    return tokenizer.toTokens(t, opts);
  });
}

export function padBatch(lists: readonly (readonly number[])[], nCtx: number, dVocab: number): PaddedBatch {
  const lengths = lists.map((t) => t.length);
  lists.forEach((t, i) => {
    const name = lists.length === 1 ? "The prompt" : `Prompt ${i}`;
    if (t.length === 0) throw new Error(`${name} has no tokens`);
    if (t.length > nCtx) {
      // The count includes a prepended BOS token, so say how many to remove rather than a text limit.
      throw new Error(
        `${name} is ${t.length} tokens but the model's context is ${nCtx} tokens (the count includes the <|endoftext|> token at the start, if prepended): shorten it by at least ${t.length - nCtx} tokens.`,
      );
    }
    for (const id of t) {
      if (!Number.isInteger(id) || id < 0 || id >= dVocab) {
        throw new Error(
          `Bad token id ${id} in ${name.toLowerCase()}: token ids must be integers in [0, ${dVocab}).`,
        );
      }
    }
  });
  const pos = Math.max(...lengths);
  const batch = lists.length;
  // Pad id 0 is valid in any vocabulary; padded positions are never attended to by real ones.
  const tokens = new Int32Array(batch * pos);
  lists.forEach((t, b) => {
    tokens.set(t, b * pos);
  });
  return { tokens, batch, pos, lengths, tokenLists: lists.map((t) => [...t]) };
}
