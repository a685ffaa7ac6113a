/**
 * TransformerLens' head_detector: how closely each head's attention pattern follows an ideal pattern
 * (previous-token, duplicate-token, induction) on given token sequences, averaged over the sequences.
 */
import type { HookedTransformer } from "../model/hooked-transformer.ts";
import { mulberry32 } from "../util/random.ts";

export type HeadKind = "previous_token" | "duplicate_token" | "induction";

/** Ideal pattern [pos, pos] (row = query, column = key) for one token sequence. */
export function detectionPattern(kind: HeadKind, tokens: readonly number[]): Float64Array {
  const n = tokens.length;
  const out = new Float64Array(n * n);
  for (let q = 0; q < n; q++)
    for (let k = 0; k <= q; k++) {
      let on = false;
      if (kind === "previous_token") on = k === q - 1;
      // An earlier copy of the current token.
      else if (kind === "duplicate_token") on = k < q && tokens[k] === tokens[q];
      // The token right after an earlier copy of the current token (the duplicate pattern shifted right).
      else if (kind === "induction") on = k >= 1 && k - 1 < q && tokens[k - 1] === tokens[q];
      else
        throw new Error(
          `Unknown head kind "${String(kind)}": use previous_token, duplicate_token or induction`,
        );
      if (on) out[q * n + k] = 1;
    }
  return out;
}

export interface DetectOptions {
  /** Ignore attention to position 0 (BOS). */
  excludeBos?: boolean;
  /** Ignore attention to the query's own position. */
  excludeCurrentToken?: boolean;
  /**
   * "mul" (default): share of the attention mass that lands on the pattern's cells;
   * "abs": 1 - (sum of |pattern - ideal| over the lower triangle) / pos.
   */
  errorMeasure?: "mul" | "abs";
}

/** Similarity of one head's pattern [pos, pos] (row-major, float) to an ideal pattern. */
export function patternScore(
  attn: ArrayLike<number>,
  ideal: ArrayLike<number>,
  n: number,
  opts: DetectOptions = {},
): number {
  const skip = (q: number, k: number) =>
    (opts.excludeBos && k === 0) || (opts.excludeCurrentToken && q === k);
  if ((opts.errorMeasure ?? "mul") === "mul") {
    let hit = 0;
    let total = 0;
    for (let q = 0; q < n; q++)
      for (let k = 0; k <= q; k++) {
        if (skip(q, k)) continue;
        const a = attn[q * n + k];
        total += a;
        hit += a * ideal[q * n + k];
      }
    return total > 0 ? hit / total : 0;
  }
  let err = 0;
  for (let q = 0; q < n; q++)
    for (let k = 0; k <= q; k++) if (!skip(q, k)) err += Math.abs(attn[q * n + k] - ideal[q * n + k]);
  // TransformerLens: 1 - mean(|diff|) * size, i.e. the summed error divided by the sequence length.
  return 1 - err / n;
}

/**
 * Detection score of every head [n_layers * n_heads] (layer-major), averaged over the sequences.
 * `kind` names a built-in ideal pattern, or pass a function building one per sequence.
 */
export function detectHeads(
  model: HookedTransformer,
  sequences: readonly (readonly number[])[],
  kind: HeadKind | ((tokens: readonly number[]) => Float64Array),
  opts: DetectOptions = {},
): Float64Array {
  const { nLayers: L, nHeads: H } = model.cfg;
  if (sequences.length === 0) throw new Error("Head detection needs at least one token sequence");
  const scores = new Float64Array(L * H);
  const names = Array.from({ length: L }, (_, l) => `blocks.${l}.attn.hook_pattern`);
  for (const seq of sequences) {
    // One sequence per run: TransformerLens scores each sequence at its own length.
    const { cache } = model.runWithCache([seq], { namesFilter: names, logits: "none" });
    const n = seq.length;
    const ideal = typeof kind === "function" ? kind(seq) : detectionPattern(kind, seq);
    if (ideal.length !== n * n)
      throw new Error(`A detection pattern must be [${n}, ${n}], got ${ideal.length} values`);
    for (let l = 0; l < L; l++) {
      const pattern = cache.get("pattern", l).data; // [1, H, n, n]
      for (let h = 0; h < H; h++)
        scores[l * H + h] +=
          patternScore(pattern.subarray(h * n * n, (h + 1) * n * n), ideal, n, opts) / sequences.length;
    }
  }
  return scores;
}

/**
 * Seeded random token sequences repeated twice (`[bos] r r`), the standard induction-head probe.
 * Tokens are drawn uniformly from [low, high).
 */
export function repeatedRandomTokens(opts: {
  nSeqs: number;
  halfLength: number;
  seed?: number;
  low?: number;
  high: number;
  bos?: number | null;
}): number[][] {
  const rng = mulberry32(opts.seed ?? 0);
  const low = opts.low ?? 0;
  if (!(opts.high > low))
    throw new Error(`Token range [${low}, ${opts.high}) is empty: raise high above low`);
  return Array.from({ length: opts.nSeqs }, () => {
    const half = Array.from({ length: opts.halfLength }, () => low + Math.floor(rng() * (opts.high - low)));
    return [...(opts.bos === null || opts.bos === undefined ? [] : [opts.bos]), ...half, ...half];
  });
}
