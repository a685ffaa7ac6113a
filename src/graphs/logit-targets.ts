/**
 * Which logits a graph explains (circuit-tracer's `compute_salient_logits`): the tokens named with --target,
 * or else the most probable next tokens until their probabilities sum to 0.95, at most 10.
 */
import { logSoftmax } from "../model/sampling.ts";

export interface LogitTargets {
  tokens: number[];
  /** The model's probability of each target at the last position. */
  probabilities: number[];
}

export interface LogitTargetOptions {
  /** Explicit target token ids (in this order); otherwise chosen by probability. */
  targets?: readonly number[];
  /** Keep the top tokens until their probabilities sum to this (default 0.95). */
  desiredProbability?: number;
  /** At most this many (default 10). */
  maxLogits?: number;
}

/** The targets from the last position's logits [d_vocab]. */
export function selectLogitTargets(lastLogits: Float32Array, opts: LogitTargetOptions = {}): LogitTargets {
  const logProbs = logSoftmax(lastLogits);
  if (opts.targets && opts.targets.length > 0) {
    const seen = new Set<number>();
    for (const t of opts.targets) {
      if (!Number.isInteger(t) || t < 0 || t >= lastLogits.length) {
        throw new Error(`target token id ${t} is outside the vocabulary (0..${lastLogits.length - 1})`);
      }
      if (seen.has(t)) throw new Error(`target token id ${t} is given twice: name each target once`);
      seen.add(t);
    }
    return { tokens: [...opts.targets], probabilities: opts.targets.map((t) => Math.exp(logProbs[t])) };
  }
  const desired = opts.desiredProbability ?? 0.95;
  const maxLogits = Math.min(opts.maxLogits ?? 10, lastLogits.length);
  if (!(maxLogits >= 1)) throw new Error("maxLogits must be at least 1");
  // top-k by probability, ties to the lower id
  const order = Array.from(logProbs.keys())
    .sort((a, b) => logProbs[b] - logProbs[a] || a - b)
    .slice(0, maxLogits);
  const tokens: number[] = [];
  const probabilities: number[] = [];
  let cumulative = 0;
  for (const t of order) {
    const p = Math.exp(logProbs[t]);
    tokens.push(t);
    probabilities.push(p);
    cumulative += p;
    if (cumulative >= desired) break;
  }
  return { tokens, probabilities };
}
