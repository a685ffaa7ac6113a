/**
 * `circuit --pairs FILE [--shard i/n] --out DIR` and `circuit-merge DIR… --out DIR`: edge scores over a file
 * of prompt pairs, in shards that merge into the one-process scores bit for bit (src/circuits/pair-scores.ts).
 * A shard's directory holds `circuit-shard.json` (each pair's scores); a single run (no --shard) and the
 * merge also write `scores.json`: the mean score of every edge over the pairs, largest |score| first.
 */
import { existsSync } from "node:fs";
import { join } from "node:path";
import type { Command } from "commander";
import {
  CIRCUIT_SHARD_FILE,
  type CircuitShardData,
  type CircuitShardSettings,
  combineCircuitShards,
  type PairScoresResult,
  scorePairShard,
  type TokenPair,
} from "../circuits/pair-scores.ts";
import { writeFileAtomic } from "../util/atomic-write.ts";
import {
  loadModelFromOptions,
  type ModelCliOptions,
  printJson,
  rejectIgnoredFlags,
  UsageError,
  withCtrlC,
} from "./common.ts";
import {
  fileSha256,
  mergePairShardDirs,
  readShardManifest,
  sameShardRun,
  shardDirProblem,
  shardOption,
  writePairShard,
} from "./shard-dir.ts";

export const SCORES_FILE = "scores.json";

/** The options of `circuit` this mode reads. */
export interface CircuitPairsOptions extends ModelCliOptions {
  pairs?: string;
  method: string;
  igSteps: number;
  prependBos: boolean;
  out?: string;
  shard?: string;
  resume?: boolean;
  json?: boolean;
}

function dirProblem(dir: string, resume: boolean | undefined): string | null {
  return shardDirProblem(dir, {
    ours: [CIRCUIT_SHARD_FILE, SCORES_FILE],
    manifest: CIRCUIT_SHARD_FILE,
    resume,
    what: "circuit shard",
    flagWhy: "with --pairs",
  });
}

function readShard(dir: string): CircuitShardData {
  return readShardManifest(dir, CIRCUIT_SHARD_FILE, "circuit --pairs");
}

function report(result: PairScoresResult, where: string, json: boolean | undefined): void {
  if (json) printJson({ out: where, ...result, edges: result.edges.slice(0, 20) });
  else
    process.stdout.write(
      `Scored ${result.edges.length} edges (${result.method}) over ${result.pairCount} pairs: logit difference clean ${result.baseline.clean.toFixed(4)}, corrupted ${result.baseline.corrupted.toFixed(4)}; top edge ${result.edges[0].name} ${result.edges[0].score.toFixed(5)}. Scores: ${where}\n`,
    );
}

export async function runCircuitPairs(opts: CircuitPairsOptions, cmd: Command): Promise<void> {
  rejectIgnoredFlags(
    cmd,
    {
      clean: "--clean",
      corrupted: "--corrupted",
      answer: "--answer",
      wrong: "--wrong",
      prompts: "--prompts",
      group: "--group",
      topN: "--top-n",
      faithfulness: "--faithfulness",
      compareTop: "--compare-top",
      keep: "--keep",
      html: "--html",
      svg: "--svg",
    },
    "with --pairs (it writes each pair's edge scores and their mean; find the circuit from them with --prompts)",
  );
  if (!["eap", "eap-ig", "exact"].includes(opts.method))
    throw new UsageError(`Unknown --method "${opts.method}": use eap, eap-ig or exact`);
  if (!(opts.igSteps >= 1)) throw new UsageError(`--ig-steps must be at least 1, got ${opts.igSteps}`);
  if (!opts.out) throw new UsageError("--pairs writes a directory: pass --out DIR.");
  const shard = shardOption(opts.shard);
  const file = opts.pairs as string;
  const { readPromptFile } = await import("../studies/prompts.ts");
  let pairs: ReturnType<typeof readPromptFile>;
  try {
    pairs = readPromptFile(file);
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  if (pairs.length === 0) throw new UsageError(`${file} holds no pairs.`);
  const problem = dirProblem(opts.out, opts.resume);
  if (problem) throw new UsageError(problem);
  const method = opts.method as CircuitShardSettings["method"];
  const settings: CircuitShardSettings = {
    model: opts.model,
    pairsFile: file,
    pairsSha256: fileSha256(file),
    pairCount: pairs.length,
    method,
    igSteps: method === "eap-ig" ? opts.igSteps : null,
    prependBos: opts.prependBos,
  };
  const shardPath = join(opts.out, CIRCUIT_SHARD_FILE);
  if (existsSync(shardPath)) {
    sameShardRun(readShard(opts.out), { settings, shard }, opts.out, "model, pairs file, method or IG steps");
    process.stderr.write(
      `Shard ${shard.index}/${shard.count} is already done in ${opts.out}: nothing to run.\n`,
    );
    return;
  }
  const model = await loadModelFromOptions(opts);
  try {
    // Every pair is tokenised and checked before the first is scored.
    const { answerToken } = await import("../patching/pairs.ts");
    const tokenPairs: TokenPair[] = pairs.map((p, i) => {
      try {
        const clean = model.toTokens(p.clean, { prependBos: opts.prependBos });
        const corrupted = model.toTokens(p.corrupted, { prependBos: opts.prependBos });
        if (clean.length !== corrupted.length)
          throw new Error(
            `the clean prompt is ${clean.length} tokens but the corrupted one is ${corrupted.length}; edges are patched position by position, so reword one of the two until their token counts match`,
          );
        return {
          clean,
          corrupted,
          answer: answerToken(model, p.answer, "answer"),
          wrong: answerToken(model, p.wrong, "wrong"),
        };
      } catch (err) {
        throw new UsageError(`${file} pair ${i}: ${(err as Error).message}`);
      }
    });
    const { createProgress, progressTo } = await import("../util/progress.ts");
    const bar = createProgress({ label: "Scoring pairs", total: 0, quiet: opts.json, unit: "pairs" });
    const data = await withCtrlC((signal) =>
      scorePairShard(model, { pairs: tokenPairs, settings, shard, signal, onPair: progressTo(bar) }),
    );
    bar.stop();
    if (data === null) {
      process.stderr.write("Stopped: nothing was written. Run the same command again.\n");
      process.exitCode = 130;
      return;
    }
    if (
      writePairShard(data, {
        out: opts.out,
        shardPath,
        shard,
        json: opts.json,
        mergeCommand: "circuit-merge",
      })
    )
      return;
    const result = combineCircuitShards([{ where: opts.out, data }]);
    writeFileAtomic(join(opts.out, SCORES_FILE), `${JSON.stringify(result)}\n`);
    report(result, join(opts.out, SCORES_FILE), opts.json);
  } finally {
    model.dispose();
  }
}

/** `circuit-merge DIR… --out DIR`: the mean scores over every pair, as one process gives them. */
export function mergeCircuitShards(dirs: readonly string[], out: string, json?: boolean): void {
  const result = mergePairShardDirs(dirs, out, json, {
    problem: (dir) => dirProblem(dir, false),
    read: readShard,
    combine: combineCircuitShards,
    file: SCORES_FILE,
    text: (r) => `${JSON.stringify(r)}\n`,
  });
  report(result, join(out, SCORES_FILE), json);
}
