/**
 * Cut a document stream into model contexts: normalise, tokenize chunk by chunk, and pack documents
 * back to back (separated by `<|endoftext|>`, as GPT-2 saw its training data) into contexts of
 * `contextLen` tokens, each starting with BOS. Streaming: only the context being filled is held.
 * Context ids number the whole corpus in order, so shards and resumed runs agree on them.
 */
import { BOS_TOKEN, gpt2Tokenizer } from "../tokenizer/tokenizer.ts";
import type { Shard } from "../util/shard.ts";
import { normalizeText, splitAtParagraphs } from "./normalize.ts";
import type { DocumentSource } from "./sources.ts";

export interface Context {
  /** Position of this context in the whole corpus (0-based), the same for every shard. */
  id: number;
  /** BOS first; `contextLen` tokens except possibly the corpus's last context. */
  tokens: number[];
}

export interface ContextOptions {
  /** Tokens per context including BOS (default 64). */
  contextLen?: number;
  /** Use only the corpus prefix whose contexts total at most this many tokens. */
  maxTokens?: number;
  /** Yield only contexts with `id % count === index`. */
  shard?: Shard;
  /** Yield only contexts with id >= this (to resume). */
  startContext?: number;
  /** Encoder from text to token ids (default GPT-2 BPE). */
  encode?: (text: string) => number[];
  /** The model's BOS token, which starts every context and separates documents (default GPT-2's <|endoftext|>). */
  bos?: number;
}

export const DEFAULT_CONTEXT_LEN = 64;

/** Yields the wanted contexts; returns the number of contexts in the (maxTokens-limited) corpus. */
export function* corpusContexts(
  source: DocumentSource,
  opts: ContextOptions = {},
): Generator<Context, number> {
  const contextLen = opts.contextLen ?? DEFAULT_CONTEXT_LEN;
  if (!Number.isInteger(contextLen) || contextLen < 2) {
    throw new Error(
      `Context length ${contextLen} is too small: use an integer >= 2 (BOS plus at least one token).`,
    );
  }
  const maxTokens = opts.maxTokens ?? Number.POSITIVE_INFINITY;
  const shard = opts.shard ?? { index: 0, count: 1 };
  const startContext = opts.startContext ?? 0;
  const encode = opts.encode ?? ((t: string) => gpt2Tokenizer().encode(t));
  const bos = opts.bos ?? BOS_TOKEN;

  let id = 0;
  let tokensBefore = 0; // tokens in contexts [0, id)
  let current: number[] = [bos];
  let pendingSeparator = false;

  // Closes the current context: returns it, null if another shard owns it, or "stop" past maxTokens.
  const finish = (): Context | null | "stop" => {
    const ctx = { id, tokens: current };
    if (tokensBefore + current.length > maxTokens) return "stop";
    tokensBefore += current.length;
    id++;
    current = [bos];
    const wanted = ctx.id >= startContext && ctx.id % shard.count === shard.index;
    return wanted ? ctx : null;
  };

  for (const doc of source.documents()) {
    const text = normalizeText(doc);
    for (const chunk of splitAtParagraphs(text)) {
      const ids = encode(chunk);
      if (ids.length === 0) continue;
      // A fresh context already starts with BOS (= end-of-text), so no separator is needed there.
      if (pendingSeparator && current.length > 1) ids.unshift(bos);
      pendingSeparator = false;
      for (const t of ids) {
        current.push(t);
        if (current.length === contextLen) {
          const out = finish();
          if (out === "stop") return id;
          if (out) yield out;
        }
      }
    }
    pendingSeparator = true;
  }
  if (current.length > 1) {
    const out = finish();
    if (out !== "stop" && out) yield out;
  }
  return id;
}
