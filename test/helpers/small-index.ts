import { writeIndexState } from "../../src/neurons/index-store.ts";
import { NeuronStats } from "../../src/neurons/neuron-stats.ts";

/**
 * Writes an unfinished one-checkpoint index of 2 neurons (top-1, one context of 4 tokens) to `dir`; its
 * numbers depend on `step`, so two checkpoints differ.
 */
export function writeSmallCheckpoint(dir: string, step = 1): void {
  const stats = new NeuronStats(2, 1);
  stats.offer(0, 1.5 * step, 7, 3);
  stats.addTokens(step);
  const settings = {
    model: "small-index",
    dMlp: 2,
    layers: [0],
    corpus: "none",
    textField: "text",
    contextLen: 4,
    maxTokens: null,
    topK: 1,
    histogram: stats.hist,
    batchSize: 1,
  };
  const progress = { nextContext: 8 * step, contexts: step, tokens: step, complete: false };
  writeIndexState(dir, {
    settings,
    shard: { index: 0, count: 1 },
    progress,
    stats,
    contexts: new Map([[7, new Uint32Array(4)]]),
  });
}
