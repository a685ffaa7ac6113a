/**
 * `graph --prompts FILE [--shard i/n] --out DIR` and `graph-merge DIR… --out DIR`: one attribution graph per
 * prompt of a file, in shards. Each prompt's graph depends on that prompt alone, so a shard's files are the
 * bytes one process writes for the same prompts; the merge copies them and writes the index from the shards'
 * manifests in file order, so the merged set equals a one-process run's byte for byte.
 *
 * A shard's directory: `graph-shard.json` (the manifest: settings, which prompts, each graph's scores;
 * rewritten after every prompt, `complete` once all are done), `graphs/<k>.json` (the front-end graph of
 * prompt k, numbered over the whole file) and with --raw-each `raw/<k>/`. A single run (no --shard) and
 * the merge also write `index.json`: prompt → graph file, replacement and completeness scores, features.
 */
import { existsSync, mkdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import type { Command } from "commander";
import { writeFileAtomic } from "../util/atomic-write.ts";
import { REPORT_MARKER } from "../util/report-dir.ts";
import type { Shard } from "../util/shard.ts";
import { orderedShardSet } from "../util/shard-set.ts";
import { readUtf8File } from "../util/text-file.ts";
import type { GraphCliOptions } from "./commands/graph-cmd.ts";
import { printJson, rejectIgnoredFlags, UsageError, withCtrlC } from "./common.ts";
import {
  fileSha256,
  readShardManifest,
  reportShardTimes,
  sameShardRun,
  shardDirProblem,
  shardOption,
} from "./shard-dir.ts";

export const GRAPH_SHARD_FORMAT = "circuitscope-graph-prompts-shard";
export const GRAPH_SHARD_VERSION = 1;
export const GRAPH_SHARD_FILE = "graph-shard.json";
export const GRAPH_INDEX_FILE = "index.json";
const OURS = [GRAPH_SHARD_FILE, GRAPH_INDEX_FILE, "graphs", "raw"];

export interface GraphPrompt {
  prompt: string;
  /** Logits to explain (token texts); empty: the top logits, as `graph` chooses them. */
  targets: string[];
}

/** What a shard is of: the merge refuses shards that differ in any of it. */
export interface GraphShardSettings {
  model: string;
  transcoders: string;
  transcoderIds: string[];
  promptsFile: string;
  promptsSha256: string;
  promptCount: number;
  nodeThreshold: number;
  edgeThreshold: number;
  slug: string;
  batchSize: number;
  prependBos: boolean;
  raw: boolean;
}

/** One prompt's line of the index. */
export interface GraphIndexEntry {
  index: number;
  prompt: string;
  targets: string[];
  graph: string;
  raw?: string;
  replacement_score: number;
  completeness_score: number;
  n_features: number;
}

export interface GraphShardData {
  format: typeof GRAPH_SHARD_FORMAT;
  version: typeof GRAPH_SHARD_VERSION;
  settings: GraphShardSettings;
  shard: Shard;
  /** Global prompt range [start, end) of this shard. */
  prompts: { start: number; end: number };
  /** The graphs done so far, in file order. */
  graphs: GraphIndexEntry[];
  complete: boolean;
  seconds: number;
}

/**
 * The prompts of a file: JSONL whose lines are objects with "prompt" (and optionally "target", a token text
 * or a list of them), or plain text with one prompt per line. Blank lines are skipped.
 */
export function parseGraphPrompts(text: string, path: string): GraphPrompt[] {
  const lines = text.split(/\r?\n/).filter((l) => l.trim() !== "");
  const jsonl = lines.length > 0 && lines.every((l) => l.trimStart().startsWith("{"));
  if (!jsonl) return lines.map((prompt) => ({ prompt, targets: [] }));
  return lines.map((line, i) => {
    let row: { prompt?: unknown; target?: unknown };
    try {
      row = JSON.parse(line);
    } catch (e) {
      throw new Error(`${path} line ${i + 1} is not JSON (${(e as Error).message}): fix or remove the line.`);
    }
    if (typeof row.prompt !== "string" || row.prompt === "")
      throw new Error(`${path} line ${i + 1} has no "prompt" text: each JSONL line needs {"prompt": "…"}.`);
    const t = row.target;
    const targets = t === undefined ? [] : typeof t === "string" ? [t] : t;
    if (!Array.isArray(targets) || targets.some((x) => typeof x !== "string"))
      throw new Error(`${path} line ${i + 1}: "target" must be a token text or a list of them.`);
    return { prompt: row.prompt, targets: targets as string[] };
  });
}

/** Prompt k's file names, numbered over the whole file with one width, so they sort in file order. */
function graphFile(k: number, count: number): string {
  return `graphs/${String(k).padStart(String(count - 1).length, "0")}.json`;
}
function rawDir(k: number, count: number): string {
  return `raw/${String(k).padStart(String(count - 1).length, "0")}`;
}

function dirProblem(dir: string, resume: boolean | undefined): string | null {
  return shardDirProblem(dir, {
    ours: OURS,
    manifest: GRAPH_SHARD_FILE,
    resume,
    what: "graph shard",
    flagWhy: "with --prompts",
  });
}

function readShard(dir: string): GraphShardData {
  return readShardManifest(dir, GRAPH_SHARD_FILE, "graph --prompts");
}

/** The index: the settings and every prompt's entry, in file order (no times: equal runs, equal bytes). */
function indexText(settings: GraphShardSettings, graphs: readonly GraphIndexEntry[]): string {
  const { model, transcoders, transcoderIds, promptsFile, promptsSha256, nodeThreshold, edgeThreshold } =
    settings;
  return `${JSON.stringify(
    {
      format: "circuitscope-graph-index",
      version: 1,
      model,
      transcoders,
      transcoder_list: transcoderIds,
      prompts_file: promptsFile,
      prompts_sha256: promptsSha256,
      node_threshold: nodeThreshold,
      edge_threshold: edgeThreshold,
      graphs,
    },
    null,
    1,
  )}\n`;
}

export async function runGraphPrompts(opts: GraphCliOptions, cmd: Command): Promise<void> {
  rejectIgnoredFlags(
    cmd,
    {
      prompt: "--prompt",
      target: "--target",
      raw: "--raw",
      overwrite: "--overwrite",
      html: "--html",
      check: "--check",
      checkFreeze: "--check-freeze",
    },
    'with --prompts (the file gives each prompt and its "target"; --raw-each writes each graph\'s raw files)',
  );
  if (!opts.out) throw new UsageError("--prompts writes a directory: pass --out DIR.");
  const shard = shardOption(opts.shard);
  const file = opts.prompts as string;
  let prompts: GraphPrompt[];
  try {
    prompts = parseGraphPrompts(readUtf8File(file, "Prompt file"), file);
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  if (prompts.length === 0) throw new UsageError(`${file} holds no prompts.`);
  const problem = dirProblem(opts.out, opts.resume);
  if (problem) throw new UsageError(problem);
  const { loadGraphInputs, graphOfPrompt, targetTokens } = await import("./commands/graph-cmd.ts");
  const { set, model } = await loadGraphInputs(opts);
  try {
    const settings: GraphShardSettings = {
      model: opts.model,
      transcoders: opts.transcoders as string,
      transcoderIds: set.ids,
      promptsFile: file,
      promptsSha256: fileSha256(file),
      promptCount: prompts.length,
      nodeThreshold: opts.nodeThreshold,
      edgeThreshold: opts.edgeThreshold,
      slug: opts.slug,
      batchSize: opts.batchSize,
      prependBos: opts.prependBos,
      raw: Boolean(opts.rawEach),
    };
    const { shardRange } = await import("../util/shard.ts");
    const range = shardRange(prompts.length, shard);
    // Every prompt's target tokens are checked before the first graph.
    const targets = prompts.map((p, k) => targetTokens(model, p.targets, `${file} prompt ${k}: target`));
    const manifestPath = join(opts.out, GRAPH_SHARD_FILE);
    let data: GraphShardData = {
      format: GRAPH_SHARD_FORMAT,
      version: GRAPH_SHARD_VERSION,
      settings,
      shard,
      prompts: range,
      graphs: [],
      complete: false,
      seconds: 0,
    };
    if (existsSync(manifestPath)) {
      const done = readShard(opts.out);
      sameShardRun(
        done,
        { settings, shard },
        opts.out,
        "model, transcoders, prompts file, thresholds or batch size",
      );
      data = done;
      if (done.complete)
        process.stderr.write(`Shard ${shard.index}/${shard.count} is already done in ${opts.out}.\n`);
    }
    const { createProgress } = await import("../util/progress.ts");
    const bar = createProgress({
      label: "graph: prompts",
      total: range.end - range.start,
      quiet: opts.json,
      unit: "prompts",
    });
    bar.tick(data.graphs.length);
    const stopped = await withCtrlC(async (signal) => {
      for (let k = range.start + data.graphs.length; k < range.end; k++) {
        const started = performance.now();
        const built = await graphOfPrompt(model, set, { ...opts, prompt: prompts[k].prompt }, targets[k], {
          signal,
        }).catch((err) => {
          if (signal.aborted) return null;
          throw err;
        });
        if (built === null) return true;
        const { writeFrontEndGraph, writeRawGraph } = await import("../graphs/graph-files.ts");
        const entry: GraphIndexEntry = {
          index: k,
          prompt: prompts[k].prompt,
          targets: prompts[k].targets,
          graph: graphFile(k, prompts.length),
          replacement_score: built.scores.replacementScore,
          completeness_score: built.scores.completenessScore,
          n_features: built.graph.features.length,
        };
        mkdirSync(join(opts.out as string, "graphs"), { recursive: true });
        writeFrontEndGraph(join(opts.out as string, entry.graph), built.frontEnd);
        if (settings.raw) {
          entry.raw = rawDir(k, prompts.length);
          mkdirSync(join(opts.out as string, "raw"), { recursive: true });
          await writeRawGraph(join(opts.out as string, entry.raw), built.graph, { overwrite: true });
        }
        // The manifest names a graph only once its files are in place: a stopped shard resumes after it.
        data.graphs.push(entry);
        data.seconds += (performance.now() - started) / 1000;
        data.complete = k + 1 === range.end;
        writeFileAtomic(manifestPath, `${JSON.stringify(data)}\n`);
        bar.tick(1);
        if (signal.aborted) return true;
      }
      return false;
    });
    bar.stop();
    if (stopped) {
      process.stderr.write(
        `Stopped after ${data.graphs.length} of this shard's ${range.end - range.start} prompts: run the same command with --resume to do the rest.\n`,
      );
      process.exitCode = 130;
      return;
    }
    if (range.start === range.end) {
      mkdirSync(opts.out, { recursive: true });
      data.complete = true;
      writeFileAtomic(manifestPath, `${JSON.stringify(data)}\n`);
    }
    if (shard.count > 1) {
      if (opts.json) printJson({ out: manifestPath, shard, prompts: range, seconds: data.seconds });
      else
        process.stdout.write(
          `Shard ${shard.index}/${shard.count}: prompts ${range.start}-${range.end - 1}, graphs in ${opts.out}/graphs (${data.seconds.toFixed(1)} s). Merge every shard with: circuitscope graph-merge DIR… --out DIR\n`,
        );
      return;
    }
    writeFileAtomic(join(opts.out, GRAPH_INDEX_FILE), indexText(settings, data.graphs));
    report(data.graphs, opts.out, opts.json);
  } finally {
    model.dispose();
  }
}

function report(graphs: readonly GraphIndexEntry[], out: string, json: boolean | undefined): void {
  const where = join(out, GRAPH_INDEX_FILE);
  if (json) printJson({ out: where, graphs });
  else process.stdout.write(`${graphs.length} graphs in ${join(out, "graphs")}; index: ${where}\n`);
}

/** `graph-merge DIR… --out DIR`: the shards' graphs and index, as one process writes them. */
export function mergeGraphShards(dirs: readonly string[], out: string, json?: boolean): void {
  const problem = dirProblem(out, false);
  if (problem) throw new UsageError(problem);
  const shards = dirs.map((dir) => ({ where: dir, data: readShard(dir) }));
  let ordered: GraphShardData[];
  try {
    ordered = orderedShardSet(shards, {
      format: GRAPH_SHARD_FORMAT,
      version: GRAPH_SHARD_VERSION,
      command: "graph --prompts",
    });
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  const whereOf = new Map(shards.map((s) => [s.data, s.where]));
  for (const d of ordered)
    if (!d.complete)
      throw new UsageError(
        `Shard ${d.shard.index}/${d.shard.count} in ${whereOf.get(d)} is unfinished (${d.graphs.length} of ${d.prompts.end - d.prompts.start} graphs): run it again with --resume.`,
      );
  const graphs = ordered.flatMap((d) => d.graphs);
  const { settings } = ordered[0];
  if (graphs.length !== settings.promptCount)
    throw new UsageError(`The shards hold ${graphs.length} graphs of the file's ${settings.promptCount}.`);
  const stray = graphs.findIndex((g, k) => g.index !== k);
  if (stray >= 0)
    throw new UsageError(
      `The shards' graphs are not the file's prompts in order (place ${stray} holds prompt ${graphs[stray].index}): run the shards again.`,
    );
  // Every file a shard names must be there before anything is written.
  const copies: { from: string; to: string }[] = [];
  for (const d of ordered) {
    const dir = whereOf.get(d) as string;
    for (const g of d.graphs) {
      const files = [
        g.graph,
        ...(g.raw ? ["nodes.json", "adjacency.safetensors", REPORT_MARKER].map((f) => `${g.raw}/${f}`) : []),
      ];
      for (const f of files) {
        if (!existsSync(join(dir, f)))
          throw new UsageError(
            `${join(dir, f)} is missing though its shard's manifest lists it: run that shard again.`,
          );
        copies.push({ from: join(dir, f), to: join(out, f) });
      }
    }
  }
  for (const { from, to } of copies) {
    mkdirSync(join(to, ".."), { recursive: true });
    writeFileAtomic(to, readFileSync(from));
  }
  // The index last: a merge stopped before it leaves no index, so the set is never taken for complete.
  writeFileAtomic(join(out, GRAPH_INDEX_FILE), indexText(settings, graphs));
  if (!json)
    reportShardTimes(
      ordered.map((d) => ({ ...d, items: d.graphs.length })),
      "prompts",
    );
  report(graphs, out, json);
}
