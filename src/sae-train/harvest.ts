/**
 * Activation harvesting, the step before training: texts are tokenized as the model does (BOS first),
 * cut to `contextLen` tokens, run through the model, and the activations of the wanted hooks at every
 * position but BOS are appended to in-memory buffers, one row per token. Kept apart from the trainer so
 * that a sharded harvest (the scale-out issue) can feed the same training code.
 */

import { parseHookName } from "../model/hook-points.ts";
import type { HookedTransformer } from "../model/hooked-transformer.ts";
import { HookDispatcher, type HookSpec } from "../model/hooks.ts";
import type { Tensor } from "../tensor/tensor.ts";

/** Activations of one hook, [rows, width] row-major: one row per harvested token. */
export interface ActivationBuffer {
  hook: string;
  width: number;
  rows: number;
  data: Float32Array;
}

/** Each text as the model tokenizes it (BOS first), cut to `contextLen` tokens; texts of BOS alone are skipped. */
export function* tokenSequences(
  model: HookedTransformer,
  texts: Iterable<string>,
  contextLen: number,
): Generator<number[]> {
  if (!Number.isInteger(contextLen) || contextLen < 2)
    throw new Error(`--context must be an integer >= 2 (BOS plus one token), got ${contextLen}`);
  const limit = Math.min(contextLen, model.cfg.nCtx);
  for (const text of texts) {
    const tokens = model.toTokens(text, { prependBos: true }).slice(0, limit);
    if (tokens.length >= 2) yield tokens;
  }
}

export interface HarvestOptions {
  hooks: readonly string[];
  /** Stop once this many tokens (rows per hook) are harvested; the last sequence is cut to fit. */
  maxTokens?: number;
  /** Sequences per forward pass (default 16). */
  batchSize?: number;
  signal?: AbortSignal;
  /** Called after each forward pass with the rows harvested so far. */
  onProgress?: (rows: number) => void;
}

/** Grows by doubling; `take()` hands over exactly the rows written. */
class GrowingRows {
  private data: Float32Array;
  rows = 0;
  constructor(readonly width: number) {
    this.data = new Float32Array(width * 1024);
  }
  append(src: Float32Array): void {
    const need = (this.rows + src.length / this.width) * this.width;
    if (need > this.data.length) {
      const bigger = new Float32Array(Math.max(need, this.data.length * 2));
      bigger.set(this.data.subarray(0, this.rows * this.width));
      this.data = bigger;
    }
    this.data.set(src, this.rows * this.width);
    this.rows += src.length / this.width;
  }
  take(): Float32Array {
    return this.data.slice(0, this.rows * this.width);
  }
}

/**
 * Runs the model over `sequences` and returns one buffer per hook, rows in sequence order (positions
 * 1 … n−1 of each). Only the blocks up to the deepest hook are run.
 */
export function harvestActivations(
  model: HookedTransformer,
  sequences: Iterable<number[]>,
  opts: HarvestOptions,
): ActivationBuffer[] {
  if (opts.hooks.length === 0) throw new Error("Nothing to harvest: name at least one hook");
  const batchSize = opts.batchSize ?? 16;
  const maxTokens = opts.maxTokens ?? Number.POSITIVE_INFINITY;
  const layers = opts.hooks.map((h) => parseHookName(h).layer);
  const stopAtLayer = layers.every((l) => l !== null)
    ? Math.min(model.cfg.nLayers, Math.max(...(layers as number[])) + 1)
    : undefined;
  const out = new Map<string, GrowingRows>();
  let harvested = 0;

  // Rows are copied inside the hook: the forward pass may reuse an activation's memory afterwards.
  const capture = (hook: string, act: Tensor, batch: number[][]) => {
    const [nBatch, pos] = act.shape;
    const width = act.data.length / (nBatch * pos);
    let rows = out.get(hook);
    if (!rows) {
      rows = new GrowingRows(width);
      out.set(hook, rows);
    }
    // Positions 1 … n−1: BOS is left out (its activations are outliers no feature should be spent on).
    for (const [b, seq] of batch.entries())
      rows.append(act.data.subarray((b * pos + 1) * width, (b * pos + seq.length) * width));
  };

  const runBatch = (batch: number[][]) => {
    const fired = new Set<string>();
    const fwdHooks: HookSpec[] = opts.hooks.map((h) => [
      h,
      (act: Tensor) => {
        capture(h, act, batch);
        fired.add(h);
      },
    ]);
    model.forward(batch, { logits: "none", stopAtLayer }, new HookDispatcher(model.cfg, fwdHooks));
    for (const hook of opts.hooks)
      if (!fired.has(hook)) throw new Error(`Hook ${hook} did not fire: is it computed by this model?`);
    harvested += batch.reduce((a, s) => a + s.length - 1, 0);
    opts.onProgress?.(harvested);
  };

  let batch: number[][] = [];
  let planned = 0;
  for (const seq of sequences) {
    if (opts.signal?.aborted) throw opts.signal.reason ?? new Error("aborted");
    if (planned >= maxTokens) break;
    const cut = seq.slice(0, Math.min(seq.length, maxTokens - planned + 1));
    planned += cut.length - 1;
    batch.push(cut);
    if (batch.length === batchSize) {
      runBatch(batch);
      batch = [];
    }
  }
  if (batch.length > 0) runBatch(batch);
  return opts.hooks.map((hook) => {
    const rows = out.get(hook);
    if (!rows) throw new Error("The corpus gave no tokens to harvest: it is empty or every text is blank.");
    return { hook, width: rows.width, rows: rows.rows, data: rows.take() };
  });
}
