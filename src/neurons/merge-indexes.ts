/**
 * Merge the finished shard indexes `0/n ... n-1/n` of one corpus into the index a single run would
 * have written (byte for byte: examples are totally ordered, counts are integer sums).
 */
import { existsSync } from "node:fs";
import { newBandSamples } from "./band-samples.ts";
import {
  type IndexManifest,
  indexDirProblem,
  manifestPath,
  readIndexState,
  readManifest,
  settingsDifference,
  unitCount,
  writeIndexState,
} from "./index-store.ts";
import { NeuronStats } from "./neuron-stats.ts";

export function mergeIndexes(shardDirs: readonly string[], outDir: string): IndexManifest {
  if (shardDirs.length === 0)
    throw new Error("No shard indexes to merge: pass the directories of shards 0/n .. n-1/n.");
  if (existsSync(manifestPath(outDir))) {
    throw new Error(`${outDir} already holds an index; merge into a new directory.`);
  }
  const problem = indexDirProblem(outDir, { flag: "--out" });
  if (problem) {
    throw new Error(problem);
  }
  const states = shardDirs.map((d) => readIndexState(d));
  const first = states[0].manifest;
  const count = first.shard.count;
  const seen = new Set<number>();
  states.forEach(({ manifest }, i) => {
    const dir = shardDirs[i];
    const diff = settingsDifference(first.settings, manifest.settings);
    if (diff)
      throw new Error(
        `${dir} was built with other settings than ${shardDirs[0]} (${diff}); only shards of one run merge.`,
      );
    if (!manifest.progress.complete)
      throw new Error(`${dir} is unfinished; complete it with --resume before merging.`);
    if (manifest.shard.count !== count || seen.has(manifest.shard.index)) {
      throw new Error(
        `${dir} is shard ${manifest.shard.index}/${manifest.shard.count}: shards must be distinct parts of one split.`,
      );
    }
    if (manifest.progress.nextContext !== first.progress.nextContext) {
      throw new Error(
        `${dir} saw a different corpus length than ${shardDirs[0]}: was the corpus changed between shards?`,
      );
    }
    seen.add(manifest.shard.index);
  });
  if (seen.size !== count) {
    const missing = Array.from({ length: count }, (_, i) => i).filter((i) => !seen.has(i));
    throw new Error(
      `Missing shard(s) ${missing.map((i) => `${i}/${count}`).join(", ")}: merge needs all ${count}.`,
    );
  }

  const { settings } = first;
  const merged = new NeuronStats(unitCount(settings), settings.topK, settings.histogram);
  const mergedSamples = settings.bandSamples
    ? newBandSamples(merged.nNeurons, merged.binsTotal, settings.bandSamples)
    : null;
  const contexts = new Map<number, Uint32Array>();
  for (const { stats, samples, contexts: ctx } of states) {
    offerAll(merged, stats);
    if (mergedSamples && samples) offerAll(mergedSamples, samples);
    for (let i = 0; i < merged.histogram.length; i++) merged.histogram[i] += stats.histogram[i];
    for (let g = 0; g < merged.nNeurons; g++) merged.positive[g] += stats.positive[g];
    merged.addTokens(stats.tokens);
    for (const [id, toks] of ctx) contexts.set(id, toks);
  }
  const progress = {
    nextContext: first.progress.nextContext,
    contexts: states.reduce((a, s) => a + s.manifest.progress.contexts, 0),
    tokens: merged.tokens,
    complete: true,
  };
  return writeIndexState(outDir, {
    settings,
    shard: { index: 0, count: 1 },
    progress,
    stats: merged,
    samples: mergedSamples,
    contexts,
  });
}

/** Offer every kept example of `from` to the same slot of `into` (the examples' order makes this exact). */
function offerAll(into: NeuronStats, from: NeuronStats): void {
  for (let g = 0; g < into.nNeurons; g++) {
    for (const e of from.top(g)) into.offer(g, e.value, e.contextId, e.position);
  }
}

export interface ShardSummary {
  dir: string;
  shard: { index: number; count: number };
  tokens: number;
  /** Wall-clock seconds the shard's runs took (null for an index written before this was recorded). */
  seconds: number | null;
  tokensPerSecond: number | null;
}

/** Tokens, time and throughput of each shard, from its manifest (what a merge reports). */
export function summarizeShards(shardDirs: readonly string[]): ShardSummary[] {
  return shardDirs.map((dir) => {
    const { shard, progress } = readManifest(dir);
    const seconds = progress.seconds ?? null;
    return {
      dir,
      shard,
      tokens: progress.tokens,
      seconds,
      tokensPerSecond: seconds ? Math.round(progress.tokens / seconds) : null,
    };
  });
}
