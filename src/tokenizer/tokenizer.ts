import r50k, { decode, encode } from "gpt-tokenizer/encoding/r50k_base";

/** GPT-2's BOS/EOS token `<|endoftext|>`, prepended by default as TransformerLens does. */
export const BOS_TOKEN = 50256;
export const GPT2_VOCAB_SIZE = 50257;

export interface TokenizeOptions {
  /** Prepend BOS (default: as the model's tokenizer does; true for GPT-2, as TransformerLens' `prepend_bos`). */
  prependBos?: boolean;
}

/** Tokens of several prompts, possibly of different lengths (not yet padded). */
export interface TokenBatch {
  tokens: number[][];
  lengths: number[];
}

/** What the model and every command use of a tokenizer, whatever the family. */
export interface Tokenizer {
  /** The token prepended as BOS. */
  readonly bosToken: number;
  /** Generation stops when the model emits it. */
  readonly eosToken: number;
  readonly vocabSize: number;
  /** Raw tokens of `text`, no BOS. */
  encode(text: string): number[];
  decode(tokens: readonly number[]): string;
  toTokens(text: string, opts?: TokenizeOptions): number[];
  toTokensBatch(texts: readonly string[], opts?: TokenizeOptions): TokenBatch;
  /**
   * Each token as text on its own (TransformerLens' `to_str_tokens`), a word-initial space as " " whatever
   * the tokenizer's marker (`▁`, `Ġ`); bytes that are no text alone as `<0xE2>`.
   */
  toStrTokens(input: string | readonly number[], opts?: TokenizeOptions): string[];
  /**
   * The single token the model would produce for `text` after other text: `" she"` is the word-initial
   * token (`▁she` for SentencePiece-style tokenizers), `"'re"` a continuation. Throws a clear error for
   * text that is several tokens.
   */
  toSingleToken(text: string): number;
  checkIds(tokens: readonly number[], vocabSize?: number): void;
}

/** Shared by every tokenizer: BOS handling, batches, id checks, the single-token error. */
export abstract class BaseTokenizer implements Tokenizer {
  abstract readonly bosToken: number;
  abstract readonly eosToken: number;
  abstract readonly vocabSize: number;
  /** Whether toTokens prepends BOS when not told. */
  protected readonly prependsBosByDefault: boolean = true;
  abstract encode(text: string): number[];
  abstract decode(tokens: readonly number[]): string;
  /** The tokens of `text` as it would be tokenized after other text. */
  protected abstract encodeContinuation(text: string): number[];
  protected abstract tokenStr(id: number): string;

  toTokens(text: string, opts: TokenizeOptions = {}): number[] {
    const ids = this.encode(text);
    return (opts.prependBos ?? this.prependsBosByDefault) ? [this.bosToken, ...ids] : ids;
  }

  toTokensBatch(texts: readonly string[], opts: TokenizeOptions = {}): TokenBatch {
    const tokens = texts.map((t) => this.toTokens(t, opts));
    return { tokens, lengths: tokens.map((t) => t.length) };
  }

  toStrTokens(input: string | readonly number[], opts: TokenizeOptions = {}): string[] {
    const ids = typeof input === "string" ? this.toTokens(input, opts) : input;
    this.checkIds(ids);
    return ids.map((t) => this.tokenStr(t));
  }

  toSingleToken(text: string): number {
    const ids = this.encodeContinuation(text);
    if (ids.length !== 1) {
      const parts = ids.map((t) => JSON.stringify(this.tokenStr(t))).join(", ");
      throw new Error(
        `${JSON.stringify(text)} is ${ids.length} tokens (${parts || "empty"}), not a single token. ` +
          `Answers must be one token: mind the leading space (" are" vs "are"), or pick a word that is one token of this model's vocabulary.`,
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

interface BpeCore {
  tryDecodeToken(id: number): string | Uint8Array | undefined;
}

/**
 * One token's text on its own. gpt-tokenizer's `decode` keeps a streaming UTF-8 decoder between calls, so
 * decoding token by token leaks a split character's bytes into the next call (`""` then a whole emoji);
 * here each token's bytes are decoded alone, and bytes that are not a whole character become `<0xNN>`.
 */
function pieceText(id: number): string {
  // gpt-tokenizer keeps the per-token bytes behind a TS-private field (pinned version; test/tokenizer checks it).
  const core = (r50k as unknown as { bytePairEncodingCoreProcessor: BpeCore }).bytePairEncodingCoreProcessor;
  const piece = core.tryDecodeToken(id);
  if (piece === undefined || typeof piece === "string") return piece ?? decode([id]);
  try {
    return new TextDecoder("utf-8", { fatal: true }).decode(piece);
  } catch {
    // Decode the longest valid prefix as text, escape the rest byte by byte.
    for (let cut = piece.length - 1; cut >= 0; cut--) {
      try {
        const head = new TextDecoder("utf-8", { fatal: true }).decode(piece.subarray(0, cut));
        const tail = [...piece.subarray(cut)].map(
          (b) => `<0x${b.toString(16).toUpperCase().padStart(2, "0")}>`,
        );
        return head + tail.join("");
      } catch {
        // not valid UTF-8 up to `cut` either: try a shorter prefix
      }
    }
    return "";
  }
}

/**
 * GPT-2 BPE (`r50k_base`) through gpt-tokenizer. `<|endoftext|>` written in a prompt is the special
 * token, as in TransformerLens.
 */
export class Gpt2BpeTokenizer extends BaseTokenizer {
  readonly bosToken = BOS_TOKEN;
  readonly eosToken = BOS_TOKEN;
  readonly vocabSize = GPT2_VOCAB_SIZE;

  encode(text: string): number[] {
    return encode(text, { allowedSpecial: "all" });
  }

  decode(tokens: readonly number[]): string {
    this.checkIds(tokens);
    return decode(tokens as number[]);
  }

  /** Byte-level BPE has no word-initial marker: text after other text tokenizes as it stands. */
  protected encodeContinuation(text: string): number[] {
    return this.encode(text);
  }

  protected tokenStr(id: number): string {
    return pieceText(id);
  }
}

/** The pre-#12 name of the tokenizer interface, kept so callers can move at their pace. */
export type Gpt2Tokenizer = Tokenizer;

let shared: Gpt2BpeTokenizer | null = null;
export function gpt2Tokenizer(): Gpt2BpeTokenizer {
  shared ??= new Gpt2BpeTokenizer();
  return shared;
}
