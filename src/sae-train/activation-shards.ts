/**
 * Activation harvesting split into shards, for training an SAE on more activations than one process (or
 * one machine's memory) holds. The corpus is planned the same way by every shard — tokenized, every tenth
 * text held out, the training stream cut to `tokens` rows, and the texts grouped into chunks of
 * `chunkSequences` texts, numbered globally — and shard i of n harvests the contiguous run of chunks
 * `shardRange` gives it. A chunk is one forward pass over the same texts whatever n is, so its activations
 * are the same bits in any split, and the shards in order are the one-process harvest, chunk for chunk.
 *
 * A shard's directory (`--out`): `harvest.json` (the manifest: settings, shard, totals, the chunks done)
 * and one safetensors file per chunk (`train-000012.safetensors`: tensor `activations` [rows, width]
 * float32). Each chunk file is written atomically and the manifest is rewritten after it, so a shard killed
 * at any point resumes (`resume`) from its last finished chunk; nothing outside its directory is touched.
 */
import { existsSync, mkdirSync, readdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import type { DocumentSource } from "../corpus/sources.ts";
import type { HookedTransformer } from "../model/hooked-transformer.ts";
import { writeFileAtomic } from "../util/atomic-write.ts";
import { yieldThenAborted } from "../util/checkpoint-yield.ts";
import { type Shard, shardRange } from "../util/shard.ts";
import { writeSafetensors } from "../weights/safetensors.ts";
import { harvestActivations } from "./harvest.ts";
import { splitSequences } from "./train-sae.ts";

export const HARVEST_FORMAT = "circuitscope-activation-shard";
export const HARVEST_VERSION = 1;
export const HARVEST_MANIFEST = "harvest.json";
/** The tensor name inside each chunk file. */
export const CHUNK_TENSOR = "activations";

/** What a harvest is of: every shard of one harvest has the same settings (a merge refuses others). */
export interface HarvestSettings {
  /** As the user named it. */
  model: string;
  hook: string;
  corpus: string;
  /** Tokens per text, BOS included. */
  context: number;
  /** Training rows harvested at most (null: the whole corpus). */
  tokens: number | null;
  /** Held-out rows harvested at most. */
  heldOutTokens: number;
  /** Texts per chunk (one forward pass each). */
  chunkSequences: number;
}

export type Split = "train" | "heldout";

export interface ChunkRecord {
  split: Split;
  /** Global chunk number within its split. */
  chunk: number;
  /** Global index of its first row within its split. */
  rowStart: number;
  rows: number;
  file: string;
}

export interface HarvestManifest {
  format: typeof HARVEST_FORMAT;
  version: typeof HARVEST_VERSION;
  settings: HarvestSettings;
  shard: Shard;
  dtype: "float32";
  /** Row width (the hook's size); null until the first chunk is written. */
  width: number | null;
  /** Totals of the whole harvest (every shard), and this shard's chunk ranges. */
  totals: { trainRows: number; heldOutRows: number; trainChunks: number; heldOutChunks: number };
  own: { train: { start: number; end: number }; heldout: { start: number; end: number } };
  /** Chunks written so far, in order. */
  chunks: ChunkRecord[];
  complete: boolean;
  /** Wall-clock seconds this shard spent harvesting (summed over resumed runs). */
  seconds: number;
}

interface PlannedChunk {
  split: Split;
  chunk: number;
  rowStart: number;
  rows: number;
  sequences: number[][];
}

/** Sequences cut as `harvestActivations` cuts them: at most `maxTokens` rows (tokens after BOS) in all. */
function capSequences(seqs: number[][], maxTokens: number): number[][] {
  const out: number[][] = [];
  let rows = 0;
  for (const seq of seqs) {
    if (rows >= maxTokens) break;
    const cut = seq.slice(0, Math.min(seq.length, maxTokens - rows + 1));
    rows += cut.length - 1;
    out.push(cut);
  }
  return out;
}

function chunksOf(split: Split, seqs: number[][], per: number): PlannedChunk[] {
  const out: PlannedChunk[] = [];
  let rowStart = 0;
  for (let c = 0; c * per < seqs.length; c++) {
    const sequences = seqs.slice(c * per, (c + 1) * per);
    const rows = sequences.reduce((a, s) => a + s.length - 1, 0);
    out.push({ split, chunk: c, rowStart, rows, sequences });
    rowStart += rows;
  }
  return out;
}

/** The whole harvest's chunks, the same in every shard (each shard tokenizes the corpus: cheap beside the model). */
export function planHarvest(
  model: HookedTransformer,
  corpus: DocumentSource,
  s: HarvestSettings,
): { train: PlannedChunk[]; heldout: PlannedChunk[] } {
  const { train, heldOut } = splitSequences(model, corpus, s.context);
  return {
    train: chunksOf("train", capSequences(train, s.tokens ?? Number.POSITIVE_INFINITY), s.chunkSequences),
    heldout: chunksOf("heldout", capSequences(heldOut, s.heldOutTokens), s.chunkSequences),
  };
}

export function chunkFileName(split: Split, chunk: number): string {
  return `${split}-${String(chunk).padStart(6, "0")}.safetensors`;
}

export function readHarvestManifest(dir: string): HarvestManifest {
  const path = join(dir, HARVEST_MANIFEST);
  let m: HarvestManifest;
  try {
    m = JSON.parse(readFileSync(path, "utf8"));
  } catch (err) {
    throw new Error(
      existsSync(path)
        ? `${path} is not readable JSON (${(err as Error).message}): re-run that shard's sae harvest with --resume.`
        : `${dir} is not an activation harvest (no ${HARVEST_MANIFEST}): give the --out directories of sae harvest.`,
    );
  }
  if (m?.format !== HARVEST_FORMAT || m.version !== HARVEST_VERSION)
    throw new Error(`${path} is not a version-${HARVEST_VERSION} ${HARVEST_FORMAT} manifest.`);
  // Every file name is ours: a damaged manifest must not point outside the shard's directory.
  for (const c of m.chunks)
    if (c.file !== chunkFileName(c.split, c.chunk))
      throw new Error(`${path} names a chunk file "${c.file}" circuitscope does not write: it is damaged.`);
  return m;
}

/** The first setting two harvests differ in, as `key: a vs b`, or null. */
export function harvestSettingsDifference(a: HarvestSettings, b: HarvestSettings): string | null {
  for (const key of new Set([...Object.keys(a), ...Object.keys(b)]) as Set<keyof HarvestSettings>)
    if (JSON.stringify(a[key]) !== JSON.stringify(b[key]))
      return `${key}: ${JSON.stringify(a[key])} vs ${JSON.stringify(b[key])}`;
  return null;
}

/**
 * Why a shard may not be harvested into `dir` (null if it may): a new or empty directory, or — with
 * `resume` — a harvest circuitscope wrote of the same settings and shard. Checked before the model loads.
 */
export function harvestDirProblem(
  dir: string,
  opts: { resume?: boolean; settings?: HarvestSettings; shard?: Shard },
): string | null {
  if (!existsSync(dir)) return null;
  if (!statSync(dir).isDirectory())
    return `--out ${dir} is a file, not a directory: choose a directory path.`;
  if (readdirSync(dir).length === 0) return null;
  let m: HarvestManifest;
  try {
    m = readHarvestManifest(dir);
  } catch {
    return `--out ${dir} already exists and is not an activation harvest circuitscope wrote: nothing was changed. Choose a new --out directory, or an empty one.`;
  }
  if (!opts.resume)
    return `${dir} already holds an activation harvest. Pass --resume to continue (or keep) it, or choose another --out directory.`;
  if (opts.shard && (m.shard.index !== opts.shard.index || m.shard.count !== opts.shard.count))
    return `Cannot resume ${dir}: it is shard ${m.shard.index}/${m.shard.count}, not ${opts.shard.index}/${opts.shard.count}.`;
  const diff = opts.settings && harvestSettingsDifference(m.settings, opts.settings);
  if (diff)
    return `Cannot resume ${dir}: it was harvested with other settings (${diff}). Choose another --out.`;
  return null;
}

export interface HarvestShardOptions {
  model: HookedTransformer;
  corpus: DocumentSource;
  settings: HarvestSettings;
  shard: Shard;
  out: string;
  resume?: boolean;
  signal?: AbortSignal;
  /** After each chunk: rows this shard has harvested, of its total. */
  onChunk?: (done: number, total: number) => void;
}

export interface HarvestShardResult {
  complete: boolean;
  manifest: HarvestManifest;
  /** Chunks harvested by this run (0 when a finished shard is run again). */
  chunksWritten: number;
}

/** Harvests this shard's chunks into `out` (continuing a run of the same settings with `resume`). */
export async function harvestShard(opts: HarvestShardOptions): Promise<HarvestShardResult> {
  const { settings: s, shard, out } = opts;
  const problem = harvestDirProblem(out, { resume: opts.resume, settings: s, shard });
  if (problem) throw new Error(problem);
  const plan = planHarvest(opts.model, opts.corpus, s);
  const own = {
    train: shardRange(plan.train.length, shard),
    heldout: shardRange(plan.heldout.length, shard),
  };
  const mine = [
    ...plan.train.slice(own.train.start, own.train.end),
    ...plan.heldout.slice(own.heldout.start, own.heldout.end),
  ];
  const previous = existsSync(join(out, HARVEST_MANIFEST)) ? readHarvestManifest(out) : null;
  const manifest: HarvestManifest = previous ?? {
    format: HARVEST_FORMAT,
    version: HARVEST_VERSION,
    settings: s,
    shard,
    dtype: "float32",
    width: null,
    totals: {
      trainRows: plan.train.reduce((a, c) => a + c.rows, 0),
      heldOutRows: plan.heldout.reduce((a, c) => a + c.rows, 0),
      trainChunks: plan.train.length,
      heldOutChunks: plan.heldout.length,
    },
    own,
    chunks: [],
    complete: false,
    seconds: 0,
  };
  if (manifest.complete) return { complete: true, manifest, chunksWritten: 0 };
  mkdirSync(out, { recursive: true });
  const done = new Set(manifest.chunks.map((c) => `${c.split}:${c.chunk}`));
  const total = mine.reduce((a, c) => a + c.rows, 0);
  let rowsDone = manifest.chunks.reduce((a, c) => a + c.rows, 0);
  let written = 0;
  let started = performance.now();
  const save = () => {
    const now = performance.now();
    manifest.seconds += (now - started) / 1000;
    started = now;
    writeFileAtomic(join(out, HARVEST_MANIFEST), `${JSON.stringify(manifest, null, 2)}\n`);
  };
  save(); // the directory is recognisably ours from the start
  for (const chunk of mine) {
    if (done.has(`${chunk.split}:${chunk.chunk}`)) continue;
    if (opts.signal?.aborted) return { complete: false, manifest, chunksWritten: written };
    // One forward pass over exactly the chunk's texts, as in every other split of the same harvest.
    const [buf] = harvestActivations(opts.model, chunk.sequences, {
      hooks: [s.hook],
      batchSize: s.chunkSequences,
    });
    if (buf.rows !== chunk.rows)
      throw new Error(`Chunk ${chunk.split} ${chunk.chunk} gave ${buf.rows} rows, planned ${chunk.rows}`);
    const file = chunkFileName(chunk.split, chunk.chunk);
    writeSafetensors(
      join(out, file),
      { [CHUNK_TENSOR]: { shape: [buf.rows, buf.width], data: buf.data } },
      "F32",
      { format: "pt", split: chunk.split, chunk: String(chunk.chunk), row_start: String(chunk.rowStart) },
    );
    manifest.width = buf.width;
    manifest.chunks.push({
      split: chunk.split,
      chunk: chunk.chunk,
      rowStart: chunk.rowStart,
      rows: chunk.rows,
      file,
    });
    written++;
    rowsDone += chunk.rows;
    save();
    opts.onChunk?.(rowsDone, total);
    if (await yieldThenAborted(opts.signal)) return { complete: false, manifest, chunksWritten: written };
  }
  manifest.chunks.sort((a, b) => (a.split === b.split ? a.chunk - b.chunk : a.split === "train" ? -1 : 1));
  manifest.complete = true;
  save();
  return { complete: true, manifest, chunksWritten: written };
}
