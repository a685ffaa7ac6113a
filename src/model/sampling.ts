import type { Rng } from "../util/random.ts";

export interface SamplingOptions {
  /** 0 = greedy (argmax). */
  temperature?: number;
  topK?: number;
  topP?: number;
}

/** Picks the next token from one row of logits [d_vocab]. */
export function sampleToken(logits: Float32Array, opts: SamplingOptions, rng: Rng): number {
  const temperature = opts.temperature ?? 1;
  if (temperature < 0) throw new Error(`temperature must be >= 0, got ${temperature}`);
  if (temperature === 0) return argmax(logits);
  let ids = Array.from(logits.keys());
  ids.sort((a, b) => logits[b] - logits[a]);
  if (opts.topK !== undefined) {
    if (!(opts.topK >= 1)) throw new Error(`topK must be >= 1, got ${opts.topK}`);
    ids = ids.slice(0, opts.topK);
  }
  const max = logits[ids[0]];
  let probs = ids.map((i) => Math.exp((logits[i] - max) / temperature));
  let total = probs.reduce((a, b) => a + b, 0);
  probs = probs.map((p) => p / total);
  if (opts.topP !== undefined) {
    if (!(opts.topP > 0 && opts.topP <= 1)) throw new Error(`topP must be in (0, 1], got ${opts.topP}`);
    // Keep the smallest prefix (by probability) whose mass reaches topP.
    let acc = 0;
    let keep = 0;
    while (keep < probs.length && acc < opts.topP) acc += probs[keep++];
    ids = ids.slice(0, keep);
    probs = probs.slice(0, keep);
    total = probs.reduce((a, b) => a + b, 0);
    probs = probs.map((p) => p / total);
  }
  let u = rng();
  for (let i = 0; i < ids.length; i++) {
    u -= probs[i];
    if (u < 0) return ids[i];
  }
  return ids[ids.length - 1];
}

export function argmax(a: Float32Array): number {
  let best = 0;
  for (let i = 1; i < a.length; i++) if (a[i] > a[best]) best = i;
  return best;
}

/** log-softmax of one row, in float64 for accuracy. */
export function logSoftmax(row: Float32Array): Float64Array {
  let max = Number.NEGATIVE_INFINITY;
  for (const x of row) if (x > max) max = x;
  let sum = 0;
  for (const x of row) sum += Math.exp(x - max);
  const lse = max + Math.log(sum);
  const out = new Float64Array(row.length);
  for (let i = 0; i < row.length; i++) out[i] = row[i] - lse;
  return out;
}
