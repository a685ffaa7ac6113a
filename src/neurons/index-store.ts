/**
 * On-disk neuron index: a directory with `manifest.json` and little-endian typed-array files (see
 * docs/neurons.md for why not SQLite). Writes are crash-safe without fsync games: data files get fresh
 * names per checkpoint generation, then the manifest naming them is replaced atomically (write + rename),
 * then the previous generation's files are deleted. A reader always sees one consistent generation.
 */
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync } from "node:fs";
import { join } from "node:path";
import { writeFileAtomic } from "../util/atomic-write.ts";
import type { Shard } from "../util/shard.ts";
import { newBandSamples } from "./band-samples.ts";
import { type HistogramSpec, NeuronStats } from "./neuron-stats.ts";

export const INDEX_FORMAT = "circuitscope-neuron-index";
export const INDEX_VERSION = 1;

/** Everything that determines an index's content; two runs with equal settings give identical stores. */
export interface IndexSettings {
  model: string;
  dMlp: number;
  layers: number[];
  corpus: string;
  textField: string;
  contextLen: number;
  maxTokens: number | null;
  topK: number;
  histogram: HistogramSpec;
  batchSize: number;
  /**
   * An SAE feature index: the SAE as given (recorded), its hook and width; the units are its features, not
   * neurons (layers is then empty). Absent for a neuron index.
   */
  sae?: { path: string; hook: string; dSae: number };
  /**
   * A transcoder feature index: the set as given (recorded), its feature input hook (block-relative) and
   * width; the units are each layer's features (layers lists them), not neurons. Absent otherwise.
   */
  transcoders?: { path: string; inputHook: string; dTranscoder: number };
  /** Examples sampled per (unit, histogram bin), for quantile groups (band-samples.ts); absent: none. */
  bandSamples?: number;
}

/** Units the index holds: the SAE's features, d_transcoder features or d_mlp neurons per indexed layer. */
export function unitCount(settings: IndexSettings): number {
  if (settings.sae) return settings.sae.dSae;
  return settings.layers.length * (settings.transcoders ? settings.transcoders.dTranscoder : settings.dMlp);
}

export interface IndexProgress {
  /** Global id of the next corpus context to consider (all before it are done or another shard's). */
  nextContext: number;
  /** Contexts and tokens indexed by this store. */
  contexts: number;
  tokens: number;
  complete: boolean;
  /**
   * Wall-clock seconds this store's runs took, resumed runs added (absent on merged indexes): what a merge
   * reports per shard. Not content: two equal indexes may differ here.
   */
  seconds?: number;
}

export interface IndexManifest {
  format: typeof INDEX_FORMAT;
  version: number;
  settings: IndexSettings;
  shard: Shard;
  progress: IndexProgress;
  /** Checkpoint generation of the data files (null once complete: final files have plain names). */
  generation: number | null;
  files: Record<DataFile, string> & Partial<Record<SampleFile, string>>;
}

const DATA_FILES = {
  topValues: "top-values.f32",
  topContexts: "top-contexts.u32",
  topPositions: "top-positions.u16",
  histogram: "histogram.u32",
  positive: "positive.u32",
  contextIds: "context-ids.u32",
  contextOffsets: "context-offsets.u32",
  contextTokens: "context-tokens.u32",
} as const;
type DataFile = keyof typeof DATA_FILES;

/** Written only when the index keeps band samples. */
const SAMPLE_FILES = {
  sampleScores: "sample-scores.f32",
  sampleContexts: "sample-contexts.u32",
  samplePositions: "sample-positions.u16",
} as const;
type SampleFile = keyof typeof SAMPLE_FILES;

const MANIFEST = "manifest.json";

export interface IndexState {
  manifest: IndexManifest;
  stats: NeuronStats;
  /** Band samples (one slot per unit and histogram bin), when the settings ask for them. */
  samples: NeuronStats | null;
  /** Tokens of every context a kept example refers to. */
  contexts: Map<number, Uint32Array>;
}

export function manifestPath(dir: string): string {
  return join(dir, MANIFEST);
}

export function readManifest(dir: string): IndexManifest {
  const path = manifestPath(dir);
  if (!existsSync(path)) {
    throw new Error(
      `${dir} is not a neuron index (no ${MANIFEST}). Build one with: circuitscope index --model M --corpus C --out ${dir}`,
    );
  }
  const manifest = parseManifest(readFileSync(path, "utf8"));
  if (manifest?.format !== INDEX_FORMAT || manifest.version !== INDEX_VERSION) {
    throw new Error(
      `${path} is not a version-${INDEX_VERSION} ${INDEX_FORMAT} manifest; rebuild the index with this circuitscope.`,
    );
  }
  // Every name the manifest gives is read, and the previous generation's are deleted: a damaged or
  // crafted manifest must not reach outside the index directory.
  for (const key of Object.keys(DATA_FILES) as DataFile[]) {
    const name = manifest.files?.[key];
    if (!isPlainFileName(name)) {
      throw new Error(
        `${path}: files.${key} is ${JSON.stringify(name)}, not a file name inside the index directory; ` +
          "the manifest is damaged or was not written by circuitscope. Rebuild the index.",
      );
    }
  }
  return manifest;
}

function parseManifest(text: string): IndexManifest | null {
  try {
    return JSON.parse(text) as IndexManifest;
  } catch {
    return null; // not JSON: not ours
  }
}

/** A name that stays in its directory: no separator, not "." or "..", no NUL, not empty. */
function isPlainFileName(name: unknown): name is string {
  return typeof name === "string" && name !== "" && name !== "." && name !== ".." && !/[/\\\0]/.test(name);
}

/** Is `dir` an index circuitscope wrote (its manifest.json is ours and readable)? */
function holdsIndex(dir: string): boolean {
  try {
    readManifest(dir);
    return true;
  } catch {
    return false;
  }
}

/**
 * Why an index may not be written to `dir` (null if it may): the same rule as a report directory —
 * only an absent or empty directory, or an index circuitscope wrote (continued only with `resume`).
 */
export function indexDirProblem(dir: string, opts: { resume?: boolean; flag: string }): string | null {
  if (!existsSync(dir)) return null;
  if (!statSync(dir).isDirectory())
    return `${opts.flag} ${dir} is a file, not a directory: choose a directory path.`;
  if (readdirSync(dir).length === 0) return null;
  if (!holdsIndex(dir)) {
    const why = existsSync(manifestPath(dir))
      ? `its ${MANIFEST} was not written by circuitscope`
      : `it has no ${MANIFEST}`;
    return (
      `${opts.flag} ${dir} already exists and is not a circuitscope neuron index (${why}): nothing was ` +
      `changed. Choose a new ${opts.flag} directory, or an empty one.`
    );
  }
  if (!opts.resume)
    return `${dir} already holds a neuron index. Pass --resume to continue it, or choose another ${opts.flag} directory.`;
  return null;
}

/** Write a checkpoint (`final` false) or the finished index (`final` true) to `dir`. */
export function writeIndexState(
  dir: string,
  state: {
    settings: IndexSettings;
    shard: Shard;
    progress: IndexProgress;
    stats: NeuronStats;
    /** Band samples, when the settings ask for them. */
    samples?: NeuronStats | null;
    contexts: Map<number, Uint32Array>;
  },
): IndexManifest {
  const { settings, shard, progress, stats, contexts } = state;
  const samples = state.samples ?? null;
  mkdirSync(dir, { recursive: true });
  const previous = existsSync(manifestPath(dir)) ? readManifest(dir) : null;
  const generation = progress.complete ? null : (previous?.generation ?? 0) + 1;
  const names: Record<string, string> = samples ? { ...DATA_FILES, ...SAMPLE_FILES } : { ...DATA_FILES };
  const files = Object.fromEntries(
    Object.entries(names).map(([key, name]) => [
      key,
      generation === null ? name : name.replace(".", `.g${generation}.`),
    ]),
  ) as IndexManifest["files"];

  const referenced = referencedContexts(stats, samples);
  const ids = [...referenced].sort((a, b) => a - b);
  const offsets = new Uint32Array(ids.length + 1);
  ids.forEach((id, i) => {
    const toks = contexts.get(id);
    if (!toks)
      throw new Error(
        `Internal error: tokens of context ${id} were dropped while an example still refers to it.`,
      );
    offsets[i + 1] = offsets[i] + toks.length;
  });
  const tokens = new Uint32Array(offsets[ids.length]);
  for (const [i, id] of ids.entries()) tokens.set(contexts.get(id)!, offsets[i]);

  const sorted = stats.sortedArrays();
  const data: Record<string, ArrayBufferView> = {
    topValues: sorted.values,
    topContexts: sorted.contexts,
    topPositions: sorted.positions,
    histogram: stats.histogram,
    positive: stats.positive,
    contextIds: Uint32Array.from(ids),
    contextOffsets: offsets,
    contextTokens: tokens,
  };
  if (samples) {
    const kept = samples.sortedArrays();
    data.sampleScores = kept.values;
    data.sampleContexts = kept.contexts;
    data.samplePositions = kept.positions;
  }
  const manifest: IndexManifest = {
    format: INDEX_FORMAT,
    version: INDEX_VERSION,
    settings,
    shard,
    progress,
    generation,
    files,
  };
  const written: string[] = [];
  try {
    const names = files as Record<string, string>;
    for (const key of Object.keys(names)) {
      writeAtomic(join(dir, names[key]), data[key]);
      written.push(names[key]);
    }
    writeAtomic(manifestPath(dir), `${JSON.stringify(manifest, null, 2)}\n`);
  } catch (err) {
    // The previous checkpoint stays the index; this generation's files, which nothing names, go.
    const kept = new Set(Object.values(previous?.files ?? {}));
    for (const name of written) if (!kept.has(name)) rmSync(join(dir, name), { force: true });
    throw err;
  }
  if (previous) {
    // Only the files the previous manifest named: nothing else in the directory is touched.
    const current = new Set(written);
    for (const name of Object.values(previous.files as Record<string, string>)) {
      if (!current.has(name)) rmSync(join(dir, name), { force: true });
    }
  }
  return manifest;
}

export function readIndexState(dir: string): IndexState {
  const manifest = readManifest(dir);
  const { settings } = manifest;
  const nNeurons = unitCount(settings);
  const stats = new NeuronStats(nNeurons, settings.topK, settings.histogram);
  const f = manifest.files;
  stats.loadSorted(
    readTyped(dir, f.topValues, Float32Array),
    readTyped(dir, f.topContexts, Uint32Array),
    readTyped(dir, f.topPositions, Uint16Array),
  );
  stats.histogram.set(readTyped(dir, f.histogram, Uint32Array));
  stats.positive.set(readTyped(dir, f.positive, Uint32Array));
  stats.tokens = manifest.progress.tokens;
  let samples: NeuronStats | null = null;
  if (settings.bandSamples && f.sampleScores && f.sampleContexts && f.samplePositions) {
    samples = newBandSamples(nNeurons, stats.binsTotal, settings.bandSamples);
    samples.loadSorted(
      readTyped(dir, f.sampleScores, Float32Array),
      readTyped(dir, f.sampleContexts, Uint32Array),
      readTyped(dir, f.samplePositions, Uint16Array),
    );
  }
  const ids = readTyped(dir, f.contextIds, Uint32Array);
  const offsets = readTyped(dir, f.contextOffsets, Uint32Array);
  const tokens = readTyped(dir, f.contextTokens, Uint32Array);
  const contexts = new Map<number, Uint32Array>();
  for (const [i, id] of ids.entries()) contexts.set(id, tokens.slice(offsets[i], offsets[i + 1]));
  return { manifest, stats, samples, contexts };
}

/** Context ids any kept example (top or sampled) refers to: the contexts an index stores. */
export function referencedContexts(stats: NeuronStats, samples: NeuronStats | null): Set<number> {
  const ids = stats.referencedContexts();
  if (samples) for (const id of samples.referencedContexts()) ids.add(id);
  return ids;
}

type TypedCtor<T> = { new (buffer: ArrayBuffer): T; BYTES_PER_ELEMENT: number };

function readTyped<T>(dir: string, name: string, ctor: TypedCtor<T>): T {
  const buf = readFileSync(join(dir, name));
  // Copy into a fresh, aligned ArrayBuffer (a Buffer may sit at any offset of a shared pool).
  return new ctor(buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength) as ArrayBuffer);
}

function writeAtomic(path: string, data: ArrayBufferView | string): void {
  writeFileAtomic(
    path,
    typeof data === "string" ? data : new Uint8Array(data.buffer, data.byteOffset, data.byteLength),
  );
}

/** Are two settings equal (so their indexes can be resumed into or merged)? Names the first difference. */
export function settingsDifference(a: IndexSettings, b: IndexSettings): string | null {
  const keys = new Set([...Object.keys(a), ...Object.keys(b)]) as Set<keyof IndexSettings>;
  for (const key of keys) {
    if (JSON.stringify(a[key]) !== JSON.stringify(b[key])) {
      return `${key}: ${JSON.stringify(a[key])} vs ${JSON.stringify(b[key])}`;
    }
  }
  return null;
}
