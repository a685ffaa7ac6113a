/**
 * Build a neuron index: stream corpus contexts through the model in batches and keep, for every neuron
 * of the chosen layers, its top-k examples, activation histogram and positive count. Checkpoints every
 * N contexts (atomically, see index-store.ts); a resumed run continues from the last checkpoint's batch
 * boundary and ends with exactly the store an uninterrupted run writes.
 */
import { existsSync } from "node:fs";
import { type Context, corpusContexts, DEFAULT_CONTEXT_LEN } from "../corpus/contexts.ts";
import type { DocumentSource } from "../corpus/sources.ts";
import type { TranscoderSet } from "../graphs/transcoder-set.ts";
import type { Sae } from "../sae/sae.ts";
import type { Shard } from "../util/shard.ts";
import { addBandSamples, newBandSamples } from "./band-samples.ts";
import {
  type IndexManifest,
  type IndexProgress,
  type IndexSettings,
  indexDirProblem,
  manifestPath,
  readIndexState,
  readManifest,
  referencedContexts,
  settingsDifference,
  unitCount,
  writeIndexState,
} from "./index-store.ts";
import { type MlpModel, resolveLayers } from "./mlp-activations.ts";
import { DEFAULT_HISTOGRAM, type HistogramSpec, NeuronStats, type RowRefs } from "./neuron-stats.ts";
import { mlpUnitSource, saeUnitSource, transcoderUnitSource, type UnitSource } from "./unit-source.ts";

export interface BuildIndexOptions {
  outDir: string;
  /** Model name or path as given by the user (recorded; resuming and merging require it equal). */
  modelName: string;
  /** Layers to track (default all; a neuron index). */
  layers?: number[];
  /**
   * Index an SAE's features instead of neurons: the SAE (its path as given is recorded, so resuming and
   * merging require it equal).
   */
  sae?: { sae: Pick<Sae, "cfg" | "encode">; path: string };
  /** Index a transcoder set's features, every layer (its path as given is recorded, as for an SAE). */
  transcoders?: { set: TranscoderSet; path: string };
  /** Examples sampled per (unit, histogram bin) for quantile groups (default none). */
  bandSamples?: number;
  topK?: number;
  contextLen?: number;
  maxTokens?: number;
  /** JSONL text field (recorded only). */
  textField?: string;
  histogram?: HistogramSpec;
  /** Contexts per forward pass (default 8). */
  batchSize?: number;
  shard?: Shard;
  /** Write a checkpoint after at least this many contexts since the last one (default 512). */
  checkpointEvery?: number;
  /** Continue an existing, unfinished index in outDir instead of refusing to touch it. */
  resume?: boolean;
  /** Stop (after the current batch) when aborted. */
  signal?: AbortSignal;
  /** Stop after this many batches in this call. */
  maxBatches?: number;
  /** Checkpoint when stopped early (default true; false behaves like a crash after the last checkpoint). */
  checkpointOnStop?: boolean;
  onProgress?: (progress: IndexProgress) => void;
}

export interface BuildIndexResult {
  /** The store's manifest (null if stopped early before any checkpoint was written). */
  manifest: IndexManifest | null;
  /** Tokens indexed in this call and the rate over model run plus statistics update. */
  tokensThisRun: number;
  tokensPerSecond: number;
}

export const DEFAULT_TOP_K = 20;
export const DEFAULT_BATCH_SIZE = 8;
export const DEFAULT_CHECKPOINT_EVERY = 512;

export async function buildIndex(
  model: MlpModel,
  source: DocumentSource,
  opts: BuildIndexOptions,
): Promise<BuildIndexResult> {
  const shard = opts.shard ?? { index: 0, count: 1 };
  if (opts.sae && opts.layers?.length) {
    throw new Error("An SAE feature index reads the SAE's hook: pass either --sae or --layers, not both.");
  }
  if ((opts.sae || opts.layers?.length) && opts.transcoders) {
    throw new Error(
      "A transcoder feature index reads every layer of its set: pass --transcoders alone, without --sae or --layers.",
    );
  }
  const sae = opts.sae?.sae;
  const tcs = opts.transcoders;
  const settings: IndexSettings = {
    model: opts.modelName,
    dMlp: model.cfg.dMlp,
    layers: sae
      ? []
      : tcs
        ? tcs.set.transcoders.map((tc) => tc.layer)
        : resolveLayers(opts.layers, model.cfg.nLayers),
    corpus: source.name,
    textField: opts.textField ?? "text",
    contextLen: opts.contextLen ?? DEFAULT_CONTEXT_LEN,
    maxTokens: opts.maxTokens ?? null,
    topK: opts.topK ?? DEFAULT_TOP_K,
    histogram: opts.histogram ?? DEFAULT_HISTOGRAM,
    batchSize: opts.batchSize ?? DEFAULT_BATCH_SIZE,
    ...(sae ? { sae: { path: opts.sae!.path, hook: sae.cfg.hookName, dSae: sae.cfg.dSae } } : {}),
    ...(tcs
      ? {
          transcoders: {
            path: tcs.path,
            inputHook: tcs.set.featureInputHook,
            dTranscoder: tcs.set.transcoders[0].dTranscoder,
          },
        }
      : {}),
    ...(opts.bandSamples ? { bandSamples: opts.bandSamples } : {}),
  };
  if (settings.contextLen > model.cfg.nCtx) {
    throw new Error(
      `Context length ${settings.contextLen} exceeds the model's ${model.cfg.nCtx} positions: pass --context-len <= ${model.cfg.nCtx}.`,
    );
  }
  const { batchSize } = settings;
  const units: UnitSource = sae
    ? saeUnitSource(model, sae)
    : tcs
      ? transcoderUnitSource(model, tcs.set)
      : mlpUnitSource(model, settings.layers);

  let stats: NeuronStats;
  let samples: NeuronStats | null;
  let contexts: Map<number, Uint32Array>;
  let progress: IndexProgress;
  const problem = indexDirProblem(opts.outDir, { resume: opts.resume, flag: "--out" });
  if (problem) throw new Error(problem);
  if (existsSync(manifestPath(opts.outDir))) {
    const state = readIndexState(opts.outDir);
    const diff = settingsDifference(state.manifest.settings, settings);
    if (diff)
      throw new Error(
        `Cannot resume ${opts.outDir}: it was built with other settings (${diff}). Use the same options.`,
      );
    if (JSON.stringify(state.manifest.shard) !== JSON.stringify(shard)) {
      throw new Error(
        `Cannot resume ${opts.outDir}: it is shard ${fmtShard(state.manifest.shard)}, not ${fmtShard(shard)}.`,
      );
    }
    if (state.manifest.progress.complete)
      return { manifest: state.manifest, tokensThisRun: 0, tokensPerSecond: 0 };
    ({ stats, samples, contexts } = state);
    progress = { ...state.manifest.progress };
  } else {
    const nUnits = unitCount(settings);
    stats = new NeuronStats(nUnits, settings.topK, settings.histogram);
    samples = settings.bandSamples ? newBandSamples(nUnits, stats.binsTotal, settings.bandSamples) : null;
    contexts = new Map();
    progress = { nextContext: 0, contexts: 0, tokens: 0, complete: false };
  }

  const tokenizer = model.tokenizer;
  const stream = corpusContexts(source, {
    contextLen: settings.contextLen,
    maxTokens: settings.maxTokens ?? undefined,
    shard,
    startContext: progress.nextContext,
    ...(tokenizer ? { encode: (t: string) => tokenizer.encode(t), bos: tokenizer.bosToken } : {}),
  });
  const checkpointEvery = opts.checkpointEvery ?? DEFAULT_CHECKPOINT_EVERY;
  const maxRows = batchSize * settings.contextLen;
  const refs: RowRefs = {
    rows: new Int32Array(maxRows),
    contextIds: new Uint32Array(maxRows),
    positions: new Uint16Array(maxRows),
    count: 0,
  };
  let sinceCheckpoint = 0;
  let batches = 0;
  let tokensThisRun = 0;
  let busyMs = 0;
  const started = performance.now();
  const secondsBefore = progress.seconds ?? 0;
  const save = () => {
    progress.seconds = Math.round(secondsBefore * 1000 + (performance.now() - started)) / 1000;
    return writeIndexState(opts.outDir, { settings, shard, progress, stats, samples, contexts });
  };

  for (;;) {
    const batch: Context[] = [];
    let next = stream.next();
    while (!next.done) {
      batch.push(next.value);
      if (batch.length === batchSize) break;
      next = stream.next();
    }
    if (batch.length > 0) {
      const t0 = performance.now();
      const run = units.run(batch.map((c) => c.tokens));
      fillRowRefs(refs, batch, run.pos);
      let offset = 0;
      run.blocksRW.forEach((block, b) => {
        const width = units.widths[b];
        stats.addBlock(block, width, offset, refs);
        if (samples) addBandSamples(samples, settings.histogram, block, width, offset, refs);
        offset += width;
      });
      stats.addTokens(refs.count);
      busyMs += performance.now() - t0;
      for (const c of batch) contexts.set(c.id, Uint32Array.from(c.tokens));
      progress.nextContext = batch[batch.length - 1].id + 1;
      progress.contexts += batch.length;
      progress.tokens += refs.count;
      tokensThisRun += refs.count;
      sinceCheckpoint += batch.length;
      batches++;
      if (batches % 32 === 0) pruneContexts(contexts, stats, samples);
    }
    if (next.done) {
      // The generator's return value is the corpus's context count, the same for every shard.
      progress.nextContext = next.value;
      progress.complete = true;
      pruneContexts(contexts, stats, samples);
      break;
    }
    if (sinceCheckpoint >= checkpointEvery) {
      pruneContexts(contexts, stats, samples);
      save();
      sinceCheckpoint = 0;
    }
    opts.onProgress?.({ ...progress });
    // Yield to the event loop so a SIGINT handler can abort between batches.
    await new Promise((resolve) => setImmediate(resolve));
    const stopped = opts.signal?.aborted || (opts.maxBatches !== undefined && batches >= opts.maxBatches);
    if (stopped) {
      const manifest =
        (opts.checkpointOnStop ?? true)
          ? save()
          : existsSync(manifestPath(opts.outDir))
            ? readManifest(opts.outDir)
            : null;
      return { manifest, tokensThisRun, tokensPerSecond: rate(tokensThisRun, busyMs) };
    }
  }
  const manifest = save();
  opts.onProgress?.({ ...progress });
  return { manifest, tokensThisRun, tokensPerSecond: rate(tokensThisRun, busyMs) };
}

/** Row refs for the real (non-padding) tokens of a right-padded batch, in (context, position) order. */
function fillRowRefs(refs: RowRefs, batch: readonly Context[], pos: number): void {
  let n = 0;
  batch.forEach((c, b) => {
    for (let p = 0; p < c.tokens.length; p++) {
      refs.rows[n] = b * pos + p;
      refs.contextIds[n] = c.id;
      refs.positions[n] = p;
      n++;
    }
  });
  refs.count = n;
}

/** Drop tokens of contexts no kept example refers to any more (memory stays bounded). */
function pruneContexts(
  contexts: Map<number, Uint32Array>,
  stats: NeuronStats,
  samples: NeuronStats | null,
): void {
  const keep = referencedContexts(stats, samples);
  for (const id of contexts.keys()) if (!keep.has(id)) contexts.delete(id);
}

function rate(tokens: number, ms: number): number {
  return ms > 0 ? (tokens * 1000) / ms : 0;
}

function fmtShard(s: Shard): string {
  return `${s.index}/${s.count}`;
}
