/**
 * A sampled corpus: the model's own stories, generated from BOS. For stories260k this is its
 * in-distribution corpus offline (TinyStories, which it was trained on, cannot be downloaded here).
 * Story i is sampled with a seed derived from (seed, i), so the corpus is reproducible and any prefix of
 * it is the same whatever the token budget.
 */
import type { HookedTransformer } from "../model/hooked-transformer.ts";

export interface SampleStoriesOptions {
  /** Stop once the stories hold at least this many generated tokens (BOS and end-of-text not counted). */
  tokens: number;
  seed: number;
  /** Tokens one story may grow to, BOS included (default: the model's context, at most 512). */
  maxStoryTokens?: number;
  temperature?: number;
}

export interface SampledStory {
  index: number;
  text: string;
  /** Generated tokens of the story (end-of-text not included). */
  tokens: number;
}

/** The seed of story `index`: a fixed mix of the corpus seed and the story's number. */
export function storySeed(seed: number, index: number): number {
  return (Math.imul(seed >>> 0, 0x9e3779b1) ^ Math.imul(index + 1, 0x85ebca77)) >>> 0;
}

/** Yields stories until their tokens reach `opts.tokens`. */
export function* sampleStories(
  model: HookedTransformer,
  opts: SampleStoriesOptions,
): Generator<SampledStory> {
  if (!Number.isInteger(opts.tokens) || opts.tokens < 1)
    throw new Error(`The token budget must be a positive integer, got ${opts.tokens}`);
  const bos = model.tokenizer.bosToken;
  const eos = model.tokenizer.eosToken;
  const maxStory = Math.min(opts.maxStoryTokens ?? model.cfg.nCtx, model.cfg.nCtx, 512);
  let total = 0;
  for (let index = 0; total < opts.tokens; index++) {
    const out = model.generate([bos], {
      maxNewTokens: maxStory - 1,
      seed: storySeed(opts.seed, index),
      temperature: opts.temperature ?? 1,
      stopAtEos: true,
      // llama2.c's story models separate stories with BOS rather than end-of-text.
      stopTokens: [bos],
    });
    const last = out.newTokens.at(-1);
    const body = last === eos || last === bos ? out.newTokens.slice(0, -1) : out.newTokens;
    if (body.length === 0) continue;
    total += body.length;
    yield { index, text: model.toString(body).trim(), tokens: body.length };
  }
}
