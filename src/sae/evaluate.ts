/**
 * What `sae features` and `sae eval` compute. Definitions (issue 29; SAELens' evals use the same
 * quantities): each text is tokenized as the model does (BOS first) and cut to `context` tokens; the
 * metrics cover positions ≥ 1 (BOS excluded):
 *
 *   l0                  mean number of non-zero features per token
 *   explained_variance  1 − Σ‖x − x̂‖² / Σ‖x − x̄‖²   (x̄: the mean over the evaluated tokens)
 *   ce_loss_*           mean next-token cross-entropy over every sequence's positions 0 … n−2 (pooled over
 *                       sequences), the hook's activation at positions ≥ 1 left (clean), replaced by x̂
 *                       (with_sae) or by zeros (zero_ablation); position 0 always as it is
 *   ce_loss_score       (CE_zero − CE_sae) / (CE_zero − CE_clean)
 *   dead_fraction       share of features never non-zero on those tokens
 */

import { parseHookName } from "../model/hook-points.ts";
import type { HookedTransformer } from "../model/hooked-transformer.ts";
import type { HookSpec } from "../model/hooks.ts";
import type { Tensor } from "../tensor/tensor.ts";
import type { Sae } from "./sae.ts";

export const DEFAULT_EVAL_CONTEXT = 128;

/** How an evaluation walks its corpus: tokens per text, texts per batch, Ctrl-C, progress in texts. */
export interface CorpusEvalOptions {
  context?: number;
  batchSize?: number;
  signal?: AbortSignal;
  onBatch?: (textsDone: number) => void;
}

export interface SaeEvalResult {
  l0: number;
  explained_variance: number;
  ce_loss_clean: number;
  ce_loss_with_sae: number;
  ce_loss_zero_ablation: number;
  ce_loss_score: number;
  dead_fraction: number;
  /** Tokens evaluated (positions ≥ 1 of every sequence). */
  tokens: number;
}

/** The hook's activation at every position of one prompt: tokens (BOS first) and [pos, d_sae] codes. */
export function promptFeatures(
  model: HookedTransformer,
  sae: Sae,
  prompt: string,
): { tokens: number[]; activations: Float32Array } {
  const tokens = model.toTokens(prompt);
  const hook = sae.cfg.hookName;
  const { layer } = parseHookName(hook);
  const { cache } = model.runWithCache([tokens], {
    namesFilter: [hook],
    logits: "none",
    // Nothing after the hook's block is needed.
    ...(layer !== null && layer + 1 < model.cfg.nLayers ? { stopAtLayer: layer + 1 } : {}),
  });
  return { tokens, activations: sae.encode(cache.get(hook).data, tokens.length).post };
}

/**
 * Evaluates `sae` on `texts` (see the module comment for the definitions). `onBatch` reports progress
 * (texts done); `signal` stops between batches (the event loop gets a turn after each, so Ctrl-C is seen).
 */
export async function evaluateSae(
  model: HookedTransformer,
  sae: Sae,
  texts: Iterable<string>,
  opts: CorpusEvalOptions = {},
): Promise<SaeEvalResult> {
  const context = opts.context ?? DEFAULT_EVAL_CONTEXT;
  if (!Number.isInteger(context) || context < 2) {
    throw new Error(`--context must be at least 2 tokens (BOS and one more), got ${context}`);
  }
  const batchSize = opts.batchSize ?? 8;
  const { dIn, dSae } = sae.cfg;
  const hook = sae.cfg.hookName;
  const everFired = new Uint8Array(dSae);
  const sumX = new Float64Array(dIn);
  let sumSqX = 0;
  let sumSqErr = 0;
  let active = 0;
  let tokens = 0;
  const ce = { clean: 0, sae: 0, zero: 0, count: 0 };

  const runBatch = (batch: number[][]) => {
    const lengths = batch.map((t) => t.length);
    // Rows (b, p) with 1 ≤ p < length: the evaluated tokens; the rest (BOS, padding) are left alone.
    const forEachRow = (act: Tensor, f: (offset: number) => void) => {
      const P = act.size / (batch.length * dIn);
      for (let b = 0; b < batch.length; b++) for (let p = 1; p < lengths[b]; p++) f((b * P + p) * dIn);
    };
    const withSae: HookSpec = [
      hook,
      (act) => {
        const offsets: number[] = [];
        forEachRow(act, (o) => offsets.push(o));
        // One encode for every evaluated row of the batch.
        const x = new Float32Array(offsets.length * dIn);
        for (const [r, o] of offsets.entries()) x.set(act.data.subarray(o, o + dIn), r * dIn);
        const { post } = sae.encode(x, offsets.length);
        const xHat = sae.decode(post, offsets.length);
        for (let i = 0; i < post.length; i++) {
          if (post[i] !== 0) {
            active++;
            everFired[i % dSae] = 1;
          }
        }
        for (let i = 0; i < x.length; i++) {
          sumX[i % dIn] += x[i];
          sumSqX += x[i] * x[i];
          sumSqErr += (x[i] - xHat[i]) ** 2;
        }
        tokens += offsets.length;
        for (const [r, o] of offsets.entries()) act.data.set(xHat.subarray(r * dIn, (r + 1) * dIn), o);
      },
    ];
    const zeroed: HookSpec = [hook, (act) => forEachRow(act, (o) => act.data.fill(0, o, o + dIn))];
    const total = (hooks: HookSpec[]) => {
      const { perToken } = model.loss(batch, { fwdHooks: hooks });
      return perToken.reduce((a, row) => a + row.reduce((s, v) => s + v, 0), 0);
    };
    ce.clean += total([]);
    ce.sae += total([withSae]);
    ce.zero += total([zeroed]);
    ce.count += lengths.reduce((a, n) => a + n - 1, 0);
  };

  await forEachTextBatch(
    model,
    texts,
    { context, batchSize, signal: opts.signal, onBatch: opts.onBatch, what: "SAE evaluation" },
    runBatch,
  );
  if (tokens === 0) throw new Error("No text gave 2 or more tokens: the corpus has nothing to evaluate on");

  let meanSq = 0;
  for (let i = 0; i < dIn; i++) meanSq += (sumX[i] / tokens) ** 2;
  const totalVariance = sumSqX - tokens * meanSq;
  const clean = ce.clean / ce.count;
  const withSae = ce.sae / ce.count;
  const zero = ce.zero / ce.count;
  return {
    l0: active / tokens,
    explained_variance: 1 - sumSqErr / totalVariance,
    ce_loss_clean: clean,
    ce_loss_with_sae: withSae,
    ce_loss_zero_ablation: zero,
    ce_loss_score: (zero - withSae) / (zero - clean),
    dead_fraction: everFired.reduce((a, v) => a + (1 - v), 0) / dSae,
    tokens,
  };
}

/**
 * The corpus loop of the evaluations: each text tokenized as the model does (BOS first) and cut to `context`
 * tokens (texts of fewer than 2 are skipped: no position ≥ 1), `batchSize` sequences per `runBatch`, a turn of
 * the event loop after each (so Ctrl-C is seen); `signal` stops between batches, `onBatch` reports texts done.
 */
export async function forEachTextBatch(
  model: HookedTransformer,
  texts: Iterable<string>,
  opts: {
    context: number;
    batchSize: number;
    signal?: AbortSignal;
    onBatch?: (textsDone: number) => void;
    what: string;
  },
  runBatch: (batch: number[][]) => void,
): Promise<void> {
  let done = 0;
  let batch: number[][] = [];
  for (const text of texts) {
    if (opts.signal?.aborted) throw new Error(`${opts.what} stopped (Ctrl-C)`);
    const toks = model.toTokens(text).slice(0, opts.context);
    if (toks.length < 2) continue; // no position ≥ 1 to evaluate
    batch.push(toks);
    if (batch.length === opts.batchSize) {
      runBatch(batch);
      done += batch.length;
      opts.onBatch?.(done);
      batch = [];
      await new Promise<void>((r) => setImmediate(r));
    }
  }
  if (batch.length) {
    runBatch(batch);
    opts.onBatch?.(done + batch.length);
  }
}
