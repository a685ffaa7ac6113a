/**
 * Edge scores (EAP, EAP-IG or exact) over a file of prompt pairs, split into shards that merge exactly.
 * Each pair is scored on its own (a one-pair `CircuitTask`), so its scores are the same bits whichever shard
 * runs it; shard i of n takes the contiguous pairs `shardRange` gives it. The merge concatenates the shards'
 * pairs in file order and takes, for every edge, the float64 mean over pairs in that order (`batchMean`:
 * s = 0; s += score[p] for p = 0, 1, …; s / n) — the same sums whatever the split, so the merged scores
 * are the one-process scores bit for bit. Against `circuit --prompts` (pairs batched by length, float32
 * sums weighted by group) they agree to float32 rounding.
 */
import { batchMean } from "../analysis/answer-metrics.ts";
import type { HookedTransformer } from "../model/hooked-transformer.ts";
import { yieldThenAborted } from "../util/checkpoint-yield.ts";
import { type Shard, shardRange } from "../util/shard.ts";
import { orderedShardSet } from "../util/shard-set.ts";
import { CircuitTask } from "./circuit-task.ts";
import type { ScoredEdge } from "./find-circuit.ts";
import { EdgeGraph, type GraphShape } from "./graph.ts";
import { rankEdges } from "./select.ts";

export const CIRCUIT_SHARD_FORMAT = "circuitscope-circuit-pairs-shard";
export const CIRCUIT_SHARD_VERSION = 1;
export const CIRCUIT_SHARD_FILE = "circuit-shard.json";

/** One pair, tokenised (answer and wrong are single tokens). */
export interface TokenPair {
  clean: readonly number[];
  corrupted: readonly number[];
  answer: number;
  wrong: number;
}

/** What a shard is of: the merge refuses shards that differ in any of it. */
export interface CircuitShardSettings {
  model: string;
  pairsFile: string;
  pairsSha256: string;
  pairCount: number;
  method: "eap" | "eap-ig" | "exact";
  /** EAP-IG's steps (null for the other methods). */
  igSteps: number | null;
  prependBos: boolean;
}

export interface CircuitShardData {
  format: typeof CIRCUIT_SHARD_FORMAT;
  version: typeof CIRCUIT_SHARD_VERSION;
  settings: CircuitShardSettings;
  shard: Shard;
  /** Global pair range [start, end) of this shard. */
  pairs: { start: number; end: number };
  /** The edge graph's shape (the edges' order is the graph's). */
  graph: GraphShape;
  /** Per pair of the shard, in file order: its clean and corrupted logit differences. */
  cleanPer: number[];
  corruptedPer: number[];
  /** [pair][edge]: the pair's score of every edge. */
  scores: number[][];
  seconds: number;
}

/** The mean over every pair of the file: what a merge (or a one-process run) writes. */
export interface PairScoresResult {
  method: CircuitShardSettings["method"];
  igSteps: number | null;
  pairCount: number;
  /** Means over pairs of the clean and corrupted logit differences. */
  baseline: { clean: number; corrupted: number };
  /** Every edge, by |mean score|, largest first. */
  edges: ScoredEdge[];
}

/** Scores this shard's pairs, one pair at a time; null when stopped (nothing to write). */
export async function scorePairShard(
  model: HookedTransformer,
  opts: {
    pairs: readonly TokenPair[];
    settings: CircuitShardSettings;
    shard: Shard;
    signal?: AbortSignal;
    onPair?: (pairsDone: number, pairsTotal: number) => void;
  },
): Promise<CircuitShardData | null> {
  const s = opts.settings;
  const range = shardRange(opts.pairs.length, opts.shard);
  const started = performance.now();
  const { nLayers, nHeads, parallelResidual } = model.cfg;
  const data: CircuitShardData = {
    format: CIRCUIT_SHARD_FORMAT,
    version: CIRCUIT_SHARD_VERSION,
    settings: s,
    shard: opts.shard,
    pairs: range,
    graph: { nLayers, nHeads, parallel: parallelResidual },
    cleanPer: [],
    corruptedPer: [],
    scores: [],
    seconds: 0,
  };
  for (let p = range.start; p < range.end; p++) {
    const pair = opts.pairs[p];
    const task = new CircuitTask(model, {
      clean: [pair.clean],
      corrupted: [pair.corrupted],
      answer: [pair.answer],
      wrong: [pair.wrong],
    });
    try {
      const all = Array.from({ length: task.graph.nEdges }, (_, e) => e);
      const scores =
        s.method === "exact"
          ? await task.exactScores(all, undefined, opts.signal)
          : await task.gradientScores(s.igSteps ?? 1, undefined, opts.signal);
      data.cleanPer.push(task.baseline.clean);
      data.corruptedPer.push(task.baseline.corrupted);
      data.scores.push(Array.from(scores));
    } catch (err) {
      if (opts.signal?.aborted) return null;
      throw err;
    } finally {
      task.dispose();
    }
    opts.onPair?.(p + 1 - range.start, range.end - range.start);
    if (await yieldThenAborted(opts.signal)) return null;
  }
  data.seconds = (performance.now() - started) / 1000;
  return data;
}

/**
 * The mean scores over every pair of the file from its shards (any order): refuses, naming it, a missing
 * shard, one given twice, or one of another run (model, pairs file, method, IG steps …).
 */
export function combineCircuitShards(
  shards: readonly { where: string; data: CircuitShardData }[],
): PairScoresResult {
  const ordered = orderedShardSet(shards, {
    format: CIRCUIT_SHARD_FORMAT,
    version: CIRCUIT_SHARD_VERSION,
    command: "circuit --pairs",
  });
  const { settings } = ordered[0];
  const cleanPer = ordered.flatMap((d) => d.cleanPer);
  const corruptedPer = ordered.flatMap((d) => d.corruptedPer);
  const rows = ordered.flatMap((d) => d.scores);
  if (rows.length !== settings.pairCount)
    throw new Error(`The shards hold ${rows.length} pairs of the file's ${settings.pairCount}.`);
  const graph = new EdgeGraph(ordered[0].graph);
  const means = new Float64Array(graph.nEdges);
  const column = new Float64Array(rows.length);
  for (let e = 0; e < graph.nEdges; e++) {
    for (let p = 0; p < rows.length; p++) column[p] = rows[p][e];
    means[e] = batchMean(column);
  }
  return {
    method: settings.method,
    igSteps: settings.igSteps,
    pairCount: rows.length,
    baseline: { clean: batchMean(cleanPer), corrupted: batchMean(corruptedPer) },
    edges: rankEdges(means).map((e) => {
      const { name, parent, child, input } = graph.edge(e);
      return { name, parent, child, input, score: means[e] };
    }),
  };
}
