/**
 * Reading activation shards (`sae harvest --shard i/n`) for training: the shards are checked to be one
 * complete harvest — every shard 0 … n−1 present once, finished, with the same settings — and read as a
 * stream, a few chunks at a time, never all at once.
 *
 * The order rows are trained in depends only on the seed and the global chunk numbers, never on how many
 * shards the harvest was split into: pass p visits the training chunks in a seeded permutation; consecutive
 * runs of `bufferChunks` of them form a window, whose rows are loaded together and visited in a seeded
 * shuffle of their own. So training on n shards is training on one, bit for bit, and memory holds at most
 * two windows (a batch may straddle two).
 */
import { existsSync, readdirSync, statSync } from "node:fs";
import { join } from "node:path";
import { SafetensorsReader } from "../weights/safetensors.ts";
import {
  CHUNK_TENSOR,
  HARVEST_MANIFEST,
  type HarvestManifest,
  type HarvestSettings,
  harvestSettingsDifference,
  readHarvestManifest,
  type Split,
} from "./activation-shards.ts";
import { type ActivationSource, seededPermutation } from "./activation-source.ts";
import type { ActivationBuffer } from "./harvest.ts";

interface ChunkFile {
  path: string;
  rowStart: number;
  rows: number;
}

export interface ActivationShards {
  settings: HarvestSettings;
  width: number;
  /** Training and held-out chunks in global order, each with its file. */
  train: ChunkFile[];
  heldout: ChunkFile[];
  trainRows: number;
  heldOutRows: number;
  /** Each shard's directory, rows and harvest seconds (for the summary). */
  shards: { dir: string; index: number; count: number; rows: number; seconds: number }[];
}

/** A shard directory, or a directory of shard directories (a scale-out work directory's `shards/`). */
function expandShardDirs(paths: readonly string[]): string[] {
  const out: string[] = [];
  for (const p of paths) {
    if (existsSync(join(p, HARVEST_MANIFEST)) || !existsSync(p) || !statSync(p).isDirectory()) {
      out.push(p);
      continue;
    }
    const subs = readdirSync(p)
      .filter((name) => existsSync(join(p, name, HARVEST_MANIFEST)))
      .sort((a, b) => a.localeCompare(b, "en", { numeric: true }));
    if (subs.length === 0)
      throw new Error(
        `${p} is not an activation harvest: it has no ${HARVEST_MANIFEST}, nor subdirectories that have one. Give the --out directories of sae harvest (or the directory holding them).`,
      );
    out.push(...subs.map((name) => join(p, name)));
  }
  return out;
}

const fmt = (m: Pick<HarvestManifest, "shard">) => `${m.shard.index}/${m.shard.count}`;

/** Opens and checks the shards of one harvest; throws naming every missing, unfinished or mismatched one. */
export function openActivationShards(paths: readonly string[]): ActivationShards {
  const dirs = expandShardDirs(paths);
  if (dirs.length === 0) throw new Error("No activation shards given: pass --activations DIR.");
  const manifests = dirs.map((dir) => ({ dir, m: readHarvestManifest(dir) }));
  const first = manifests[0];
  const n = first.m.shard.count;
  for (const { dir, m } of manifests) {
    const diff = harvestSettingsDifference(first.m.settings, m.settings);
    if (diff)
      throw new Error(
        `Shard ${fmt(m)} in ${dir} is from another harvest than shard ${fmt(first.m)} in ${first.dir} (${diff}): train on the shards of one sae harvest command.`,
      );
    if (m.shard.count !== n || JSON.stringify(m.totals) !== JSON.stringify(first.m.totals))
      throw new Error(
        `Shard ${fmt(m)} in ${dir} belongs to another split than shard ${fmt(first.m)} in ${first.dir}: every shard must come from the same --shard i/${n} run.`,
      );
  }
  const byIndex = new Map<number, { dir: string; m: HarvestManifest }>();
  for (const s of manifests) {
    const twice = byIndex.get(s.m.shard.index);
    if (twice)
      throw new Error(`Shard ${fmt(s.m)} is given twice: ${twice.dir} and ${s.dir}. Give each shard once.`);
    byIndex.set(s.m.shard.index, s);
  }
  const missing = Array.from({ length: n }, (_, i) => i).filter((i) => !byIndex.has(i));
  if (missing.length > 0)
    throw new Error(
      `Missing activation shard${missing.length > 1 ? "s" : ""} ${missing.map((i) => `${i}/${n}`).join(", ")} (given: ${manifests.map((s) => `${fmt(s.m)} ${s.dir}`).join(", ")}): harvest ${missing.length > 1 ? "them" : "it"} with sae harvest … --shard ${missing[0]}/${n}, or give its directory.`,
    );
  const unfinished = manifests.filter((s) => !s.m.complete);
  if (unfinished.length > 0)
    throw new Error(
      `Unfinished activation shard${unfinished.length > 1 ? "s" : ""}: ${unfinished.map((s) => `${fmt(s.m)} in ${s.dir}`).join(", ")}. Re-run the same sae harvest command with --resume to finish ${unfinished.length > 1 ? "them" : "it"}.`,
    );
  const ordered = [...byIndex.values()].sort((a, b) => a.m.shard.index - b.m.shard.index);
  const gather = (split: Split, expected: number): ChunkFile[] => {
    const files: ChunkFile[] = [];
    for (const { dir, m } of ordered)
      for (const c of m.chunks.filter((c) => c.split === split)) {
        if (
          c.chunk !== files.length ||
          (files.length > 0 && c.rowStart !== files.at(-1)!.rowStart + files.at(-1)!.rows)
        )
          throw new Error(
            `Shard ${fmt(m)} in ${dir} has ${split} chunk ${c.chunk} where chunk ${files.length} was due: its manifest is damaged; harvest it again into a new directory.`,
          );
        files.push({ path: join(dir, c.file), rowStart: c.rowStart, rows: c.rows });
      }
    if (files.length !== expected)
      throw new Error(
        `The shards hold ${files.length} ${split} chunks of the ${expected} planned: harvest them again.`,
      );
    return files;
  };
  const train = gather("train", first.m.totals.trainChunks);
  const heldout = gather("heldout", first.m.totals.heldOutChunks);
  const width = manifests.find((s) => s.m.width !== null)?.m.width;
  if (width === undefined || width === null) throw new Error("The activation shards hold no activations.");
  return {
    settings: first.m.settings,
    width,
    train,
    heldout,
    trainRows: first.m.totals.trainRows,
    heldOutRows: first.m.totals.heldOutRows,
    shards: ordered.map(({ dir, m }) => ({
      dir,
      index: m.shard.index,
      count: m.shard.count,
      rows: m.chunks.reduce((a, c) => a + c.rows, 0),
      seconds: m.seconds,
    })),
  };
}

function readChunk(file: ChunkFile, width: number): Float32Array {
  const reader = SafetensorsReader.open(file.path);
  try {
    const info = reader.tensors.get(CHUNK_TENSOR);
    if (!info || info.shape[0] !== file.rows || info.shape[1] !== width)
      throw new Error(
        `${file.path} does not hold the [${file.rows}, ${width}] activations its manifest lists: harvest that shard again.`,
      );
    return reader.readFloat32(CHUNK_TENSOR);
  } finally {
    reader.close();
  }
}

/** Every held-out row, in order, in memory (the harvest caps them: `heldOutTokens`). */
export function readHeldOut(shards: ActivationShards): ActivationBuffer {
  const data = new Float32Array(shards.heldOutRows * shards.width);
  for (const c of shards.heldout) data.set(readChunk(c, shards.width), c.rowStart * shards.width);
  return { hook: shards.settings.hook, width: shards.width, rows: shards.heldOutRows, data };
}

interface Window {
  /** Rows of the window's chunks, in the pass's chunk order. */
  data: Float32Array;
  /** Visiting order of those rows. */
  perm: Uint32Array;
}

/** A pass's chunk order and where each window starts, in rows from the pass's start. */
interface PassPlan {
  chunks: Uint32Array;
  starts: number[];
}

/** The training rows of `shards` as a stream of seeded batches (see the module comment). */
export function shardStreamSource(
  shards: ActivationShards,
  opts: { seed: number; bufferChunks: number },
): ActivationSource {
  const { width, train } = shards;
  const rows = shards.trainRows;
  const per = Math.max(1, Math.floor(opts.bufferChunks));
  const seedWord = (pass: number) => opts.seed * 0x9e3779b1 + pass * 0x7f4a7c15 + 1;
  const passes = new Map<number, PassPlan>();
  const windows = new Map<string, Window>();
  const passPlan = (pass: number): PassPlan => {
    let plan = passes.get(pass);
    if (!plan) {
      const chunks = seededPermutation(train.length, seedWord(pass));
      const starts: number[] = [];
      let at = 0;
      for (let w = 0; w * per < chunks.length; w++) {
        starts.push(at);
        for (const c of chunks.subarray(w * per, (w + 1) * per)) at += train[c].rows;
      }
      if (passes.size > 1) passes.delete(Math.min(...passes.keys()));
      plan = { chunks, starts };
      passes.set(pass, plan);
    }
    return plan;
  };
  const windowOf = (pass: number, w: number): Window => {
    const key = `${pass}:${w}`;
    let win = windows.get(key);
    if (!win) {
      const ids = passPlan(pass).chunks.subarray(w * per, (w + 1) * per);
      const n = ids.reduce((a, c) => a + train[c].rows, 0);
      const data = new Float32Array(n * width);
      let at = 0;
      for (const c of ids) {
        data.set(readChunk(train[c], width), at * width);
        at += train[c].rows;
      }
      const perm = seededPermutation(n, seedWord(pass) + (w + 1) * 0x85ebca6b + 1);
      // At most two windows at once: the one a batch ends in and the one it started in.
      if (windows.size > 1) windows.delete(windows.keys().next().value!);
      win = { data, perm };
      windows.set(key, win);
    }
    return win;
  };
  return {
    rows,
    dIn: width,
    dOut: width,
    targetMean() {
      const acc = new Float64Array(width);
      for (const c of train) {
        const data = readChunk(c, width);
        for (let r = 0; r < c.rows; r++) for (let i = 0; i < width; i++) acc[i] += data[r * width + i];
      }
      return Float32Array.from(acc, (v) => v / rows);
    },
    batch(step, size) {
      const x = new Float32Array(size * width);
      for (let i = 0; i < size; i++) {
        const at = step * size + i;
        const pass = Math.floor(at / rows);
        const offset = at % rows;
        const { starts } = passPlan(pass);
        let lo = 0;
        let hi = starts.length - 1;
        while (lo < hi) {
          const mid = (lo + hi + 1) >> 1;
          if (starts[mid] <= offset) lo = mid;
          else hi = mid - 1;
        }
        const win = windowOf(pass, lo);
        const r = win.perm[offset - starts[lo]];
        x.set(win.data.subarray(r * width, (r + 1) * width), i * width);
      }
      return { x, y: x };
    },
  };
}
