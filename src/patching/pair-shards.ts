/**
 * Patching over a file of prompt pairs, split into shards that merge exactly. The pairs are run in batches
 * of `batchSize`, numbered over the whole file; shard i of n runs the contiguous batches `shardRange` gives
 * it, so every batch is the same forward passes whatever n is, and each pair's metric values are the same
 * bits. A shard keeps each pair's values (clean, corrupted, and under every patch); combining them — one
 * shard's or n's — takes the means over all pairs in file order (`batchMean`), so the merged result is the
 * one-process result bit for bit.
 */

import { batchMean } from "../analysis/answer-metrics.ts";
import type { HookedTransformer } from "../model/hooked-transformer.ts";
import { yieldThenAborted } from "../util/checkpoint-yield.ts";
import { type Shard, shardRange } from "../util/shard.ts";
import { orderedShardSet } from "../util/shard-set.ts";
import { activationPatching } from "./activation-patching.ts";
import { attributionPatching } from "./attribution-patching.ts";
import { agreeingLabels, axisLabels, resultFromMetrics } from "./result.ts";
import type { PatchTarget } from "./targets.ts";
import type { PatchResult } from "./types.ts";

export const PAIR_SHARD_FORMAT = "circuitscope-patch-pairs-shard";
export const PAIR_SHARD_VERSION = 1;
export const PAIR_SHARD_FILE = "pairs-shard.json";

export interface PatchPair {
  clean: string;
  corrupted: string;
  answer: string;
  wrong: string;
}

/** What a shard is of: the merge refuses shards that differ in any of it. */
export interface PairShardSettings {
  model: string;
  /** The pairs file as given, its SHA-256 and its number of pairs. */
  pairsFile: string;
  pairsSha256: string;
  pairCount: number;
  /** The target as the command line names it, with its options. */
  target: string;
  targetOptions: { layer?: number; pos?: number; byPos?: boolean };
  method: "exact" | "attribution";
  batchSize: number;
  prependBos: boolean;
}

export interface PairShardData {
  format: typeof PAIR_SHARD_FORMAT;
  version: typeof PAIR_SHARD_VERSION;
  settings: PairShardSettings;
  shard: Shard;
  /** Global pair range [start, end) of this shard. */
  pairs: { start: number; end: number };
  /** The result's target name (as `patch` reports it). */
  target: string;
  axes: string[];
  shape: number[];
  kvGroupSize?: number;
  /** Per pair of the shard, in file order. */
  cleanPer: number[];
  corruptedPer: number[];
  /** [pair][site]: the pair's metric under each patch. */
  perRaw: number[][];
  /** The clean prompt's tokens as strings (the merged position labels). */
  cleanTokens: string[][];
  seconds: number;
}

/** Pairs [start, end) of shard `shard`: whole batches of `batchSize`, contiguous. */
export function shardPairs(
  pairCount: number,
  batchSize: number,
  shard: Shard,
): { start: number; end: number } {
  const batches = Math.ceil(pairCount / batchSize);
  const { start, end } = shardRange(batches, shard);
  return { start: start * batchSize, end: Math.min(end * batchSize, pairCount) };
}

/** Runs this shard's batches; null when stopped (nothing to write). */
export async function patchPairShard(
  model: HookedTransformer,
  opts: {
    pairs: readonly PatchPair[];
    settings: PairShardSettings;
    target: PatchTarget;
    shard: Shard;
    signal?: AbortSignal;
    onBatch?: (pairsDone: number, pairsTotal: number) => void;
  },
): Promise<PairShardData | null> {
  const { settings: s } = opts;
  const range = shardPairs(opts.pairs.length, s.batchSize, opts.shard);
  const started = performance.now();
  const data: PairShardData = {
    format: PAIR_SHARD_FORMAT,
    version: PAIR_SHARD_VERSION,
    settings: s,
    shard: opts.shard,
    pairs: range,
    target: s.target,
    axes: [],
    shape: [],
    cleanPer: [],
    corruptedPer: [],
    perRaw: [],
    cleanTokens: [],
    seconds: 0,
  };
  const run = s.method === "attribution" ? attributionPatching : activationPatching;
  for (let b = range.start; b < range.end; b += s.batchSize) {
    const batch = opts.pairs.slice(b, Math.min(b + s.batchSize, range.end));
    const r = await run(model, {
      clean: batch.map((p) => p.clean),
      corrupted: batch.map((p) => p.corrupted),
      answers: {
        answer: batch.map((p) => model.toSingleToken(p.answer)),
        wrong: batch.map((p) => model.toSingleToken(p.wrong)),
      },
      target: opts.target,
      prependBos: s.prependBos,
      signal: opts.signal,
    });
    if (data.shape.length > 0 && data.shape.join() !== r.shape.join())
      throw new Error(
        `Pairs ${b}-${b + batch.length - 1} give a [${r.shape}] result where earlier pairs gave [${data.shape}]: per-position targets need every pair of the file to have one token length.`,
      );
    data.target = r.target;
    data.axes = r.axes;
    data.shape = r.shape;
    if (r.kvGroupSize !== undefined) data.kvGroupSize = r.kvGroupSize;
    const nSites = r.raw.length;
    for (let p = 0; p < batch.length; p++) {
      data.cleanPer.push(r.perPrompt.clean[p]);
      data.corruptedPer.push(r.perPrompt.corrupted[p]);
      data.perRaw.push([...r.perPrompt.raw.subarray(p * nSites, (p + 1) * nSites)]);
      data.cleanTokens.push(model.toStrTokens(batch[p].clean, { prependBos: s.prependBos }));
    }
    opts.onBatch?.(b + batch.length - range.start, range.end - range.start);
    if (await yieldThenAborted(opts.signal)) return null;
  }
  data.seconds = (performance.now() - started) / 1000;
  return data;
}

const fmt = (d: Pick<PairShardData, "shard">) => `${d.shard.index}/${d.shard.count}`;

/**
 * The result over every pair of the file from its shards (any order): refuses, naming it, a missing shard,
 * one given twice, or one of another run (model, pairs file, target, method, batch size …).
 */
export function combinePairShards(shards: readonly { where: string; data: PairShardData }[]): PatchResult {
  const ordered = orderedShardSet(shards, {
    format: PAIR_SHARD_FORMAT,
    version: PAIR_SHARD_VERSION,
    command: "patch --pairs",
  });
  const withData = ordered.filter((d) => d.cleanPer.length > 0);
  const shape = withData[0].shape;
  for (const d of withData)
    if (d.shape.join() !== shape.join())
      throw new Error(
        `Shard ${fmt(d)} has [${d.shape}] results where shard ${fmt(withData[0])} has [${shape}]: per-position targets need every pair of the file to have one token length.`,
      );
  const cleanPer = ordered.flatMap((d) => d.cleanPer);
  const corruptedPer = ordered.flatMap((d) => d.corruptedPer);
  const perRows = ordered.flatMap((d) => d.perRaw);
  if (cleanPer.length !== ordered[0].settings.pairCount)
    throw new Error(
      `The shards hold ${cleanPer.length} pairs of the file's ${ordered[0].settings.pairCount}.`,
    );
  const nSites = perRows[0].length;
  const perRaw = new Float64Array(cleanPer.length * nSites);
  for (const [p, row] of perRows.entries()) perRaw.set(row, p * nSites);
  // Means over every pair in file order: the same sums whatever the split.
  const raw = new Float64Array(nSites);
  const column = new Float64Array(cleanPer.length);
  for (let s = 0; s < nSites; s++) {
    for (let p = 0; p < cleanPer.length; p++) column[p] = perRaw[p * nSites + s];
    raw[s] = batchMean(column);
  }
  const posLabels = agreeingLabels(ordered.flatMap((d) => d.cleanTokens));
  return resultFromMetrics({
    target: withData[0].target,
    axes: withData[0].axes,
    shape,
    labels: withData[0].axes.map((a) => axisLabels(a, posLabels)),
    metric: {
      clean: batchMean(cleanPer),
      corrupted: batchMean(corruptedPer),
      cleanPer,
      corruptedPer,
      raw,
      perRaw,
    },
    method: withData[0].settings.method,
    ...(withData[0].kvGroupSize !== undefined ? { kvGroupSize: withData[0].kvGroupSize } : {}),
  });
}
