import { decode, encode } from "gpt-tokenizer/encoding/r50k_base";

/** GPT-2's BOS/EOS token `<|endoftext|>`, prepended by default as TransformerLens does. */
export const BOS_TOKEN = 50256;
export const GPT2_VOCAB_SIZE = 50257;

export interface TokenizeOptions {
  /** Prepend BOS (default true, as TransformerLens' `prepend_bos`). */
  prependBos?: boolean;
}

/** Tokens of several prompts, possibly of different lengths (not yet padded). */
export interface TokenBatch {
  tokens: number[][];
  lengths: number[];
}

/**
 * GPT-2 BPE (`r50k_base`) through gpt-tokenizer. `<|endoftext|>` written in a prompt is the special
 * token, as in TransformerLens.
 */
export class Gpt2Tokenizer {
  readonly bosToken = BOS_TOKEN;
  readonly vocabSize = GPT2_VOCAB_SIZE;

  /** Raw BPE, no BOS. */
  encode(text: string): number[] {
    return encode(text, { allowedSpecial: "all" });
  }

  decode(tokens: readonly number[]): string {
    this.checkIds(tokens);
    return decode(tokens as number[]);
  }

  toTokens(text: string, opts: TokenizeOptions = {}): number[] {
    const ids = this.encode(text);
    return (opts.prependBos ?? true) ? [BOS_TOKEN, ...ids] : ids;
  }

  toTokensBatch(texts: readonly string[], opts: TokenizeOptions = {}): TokenBatch {
    const tokens = texts.map((t) => this.toTokens(t, opts));
    return { tokens, lengths: tokens.map((t) => t.length) };
  }

  /** Each token decoded on its own (TransformerLens' `to_str_tokens`). */
  toStrTokens(input: string | readonly number[], opts: TokenizeOptions = {}): string[] {
    const ids = typeof input === "string" ? this.toTokens(input, opts) : input;
    this.checkIds(ids);
    return ids.map((t) => decode([t]));
  }

  /** The id of a string that must be exactly one token, e.g. `" are"` or `"'re"`. */
  toSingleToken(text: string): number {
    const ids = this.encode(text);
    if (ids.length !== 1) {
      const parts = ids.map((t) => JSON.stringify(decode([t]))).join(", ");
      throw new Error(
        `${JSON.stringify(text)} is ${ids.length} tokens (${parts || "empty"}), not a single token. ` +
          `Answers must be one token: mind the leading space (" are" vs "are"), or pick a word that is one GPT-2 token.`,
      );
    }
    return ids[0];
  }

  checkIds(tokens: readonly number[], vocabSize: number = this.vocabSize): void {
    for (const t of tokens) {
      if (!Number.isInteger(t) || t < 0 || t >= vocabSize) {
        throw new Error(`Bad token id ${t}: token ids must be integers in [0, ${vocabSize}).`);
      }
    }
  }
}

let shared: Gpt2Tokenizer | null = null;
export function gpt2Tokenizer(): Gpt2Tokenizer {
  shared ??= new Gpt2Tokenizer();
  return shared;
}
