/**
 * Indexing throughput on a GPT-2-small-shaped random checkpoint (12 layers, d_model 768, d_mlp 3072,
 * all 36,864 neurons tracked, contexts of 64 tokens from nlp-corpus). Reported by `circuitscope bench`
 * as `index_tokens_per_s`. Also times the statistics update alone, to show it is not the bottleneck.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { nlpCorpusSource } from "../src/corpus/sources.ts";
import type { HookedTransformer } from "../src/model/hooked-transformer.ts";
import { buildIndex } from "../src/neurons/build-index.ts";
import { NeuronStats, type RowRefs } from "../src/neurons/neuron-stats.ts";
import type { KernelName } from "../src/tensor/kernels.ts";
import { mulberry32, randn } from "../src/util/random.ts";
import type { ModelShape } from "../src/weights/config.ts";
import { randomGpt2Small } from "./gpt2-small.ts";

export interface BenchIndexingOptions {
  backend?: KernelName;
  /** Contexts to index (default 64 = 4,096 tokens). */
  contexts?: number;
  contextLen?: number;
  batchSize?: number;
  /** The model to index with (default: a random GPT-2-small-shaped one, built here). */
  model?: HookedTransformer;
}

export interface BenchIndexingResult {
  /** End to end: forward pass to the last MLP plus statistics update, per token. */
  tokensPerSecond: number;
  /** The statistics update alone (top-k, histogram, density) for all tracked neurons. */
  statsTokensPerSecond: number;
  tokens: number;
  neurons: number;
}

export async function benchIndexing(opts: BenchIndexingOptions = {}): Promise<BenchIndexingResult> {
  const contextLen = opts.contextLen ?? 64;
  const nContexts = opts.contexts ?? 64;
  const batchSize = opts.batchSize ?? 8;
  const dir = mkdtempSync(join(tmpdir(), "circuitscope-bench-index-"));
  try {
    const model = opts.model ?? randomGpt2Small({ backend: opts.backend ?? "onnx" });
    const config = model.cfg;
    const common = {
      modelName: "random-gpt2-small",
      contextLen,
      batchSize,
      checkpointEvery: Number.POSITIVE_INFINITY,
    };
    // Warm-up (kernel prepacking, JIT) on one batch, then the timed run.
    await buildIndex(model, nlpCorpusSource(), {
      ...common,
      outDir: join(dir, "warmup"),
      maxTokens: batchSize * contextLen,
    });
    const run = await buildIndex(model, nlpCorpusSource(), {
      ...common,
      outDir: join(dir, "index"),
      maxTokens: nContexts * contextLen,
    });
    if (!opts.model) model.dispose();
    const neurons = config.nLayers * config.dMlp;
    return {
      tokensPerSecond: run.tokensPerSecond,
      statsTokensPerSecond: benchStatsUpdate(config, batchSize * contextLen),
      tokens: run.tokensThisRun,
      neurons,
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Tokens/s of `NeuronStats.addBlock` alone over GELU-like random activations for all layers. */
function benchStatsUpdate(config: ModelShape, rowsPerBatch: number, batches = 8): number {
  const { nLayers, dMlp } = config;
  const rng = mulberry32(7);
  // A few distinct blocks, cycled, so later batches still bring some new top-k entries.
  const blocks = Array.from({ length: 5 }, () => {
    const acts = new Float32Array(rowsPerBatch * dMlp);
    for (let i = 0; i < acts.length; i++) {
      const x = randn(rng);
      acts[i] = 0.5 * x * (1 + Math.tanh(0.7978845608 * (x + 0.044715 * x * x * x)));
    }
    return acts;
  });
  const stats = new NeuronStats(nLayers * dMlp, 20);
  const refs: RowRefs = {
    rows: Int32Array.from({ length: rowsPerBatch }, (_, i) => i),
    contextIds: new Uint32Array(rowsPerBatch),
    positions: new Uint16Array(rowsPerBatch),
    count: rowsPerBatch,
  };
  // CPU time, not wall time: on a shared machine this measures the update's own cost.
  const t0 = process.cpuUsage().user / 1000;
  for (let b = 0; b < batches; b++) {
    for (let i = 0; i < rowsPerBatch; i++) {
      refs.contextIds[i] = b * 1000 + (i >> 6);
      refs.positions[i] = i & 63;
    }
    for (let l = 0; l < nLayers; l++)
      stats.addBlock(blocks[(b * nLayers + l) % blocks.length], dMlp, l * dMlp, refs);
  }
  return (batches * rowsPerBatch * 1000) / (process.cpuUsage().user / 1000 - t0);
}
