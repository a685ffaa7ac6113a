/**
 * `patch --pairs FILE [--shard i/n] --out DIR` and `patch-merge DIR… --out DIR`: patching over a file of
 * prompt pairs, in shards that merge into the one-process result bit for bit (src/patching/pair-shards.ts).
 * A shard's directory holds `pairs-shard.json` (each pair's values); a single run (no --shard) and the merge
 * also write `result.json`, the full result as `patch --out` writes it.
 */
import { existsSync } from "node:fs";
import { join } from "node:path";
import type { Command } from "commander";
import {
  combinePairShards,
  PAIR_SHARD_FILE,
  type PairShardData,
  type PairShardSettings,
  patchPairShard,
} from "../patching/pair-shards.ts";
import { fullJson, resultJson } from "../patching/result-format.ts";
import type { PatchResult } from "../patching/types.ts";
import { writeFileAtomic } from "../util/atomic-write.ts";
import type { PatchOptions } from "./commands/patch-cmd.ts";
import { loadModelFromOptions, printJson, rejectIgnoredFlags, UsageError, withCtrlC } from "./common.ts";
import {
  fileSha256,
  mergePairShardDirs,
  readShardManifest,
  sameShardRun,
  shardDirProblem,
  shardOption,
  writePairShard,
} from "./shard-dir.ts";

export const RESULT_FILE = "result.json";

function pairDirProblem(dir: string, resume: boolean | undefined): string | null {
  return shardDirProblem(dir, {
    ours: [PAIR_SHARD_FILE, RESULT_FILE],
    manifest: PAIR_SHARD_FILE,
    resume,
    what: "patch shard",
    flagWhy: "with --pairs",
  });
}

function readShard(dir: string): PairShardData {
  return readShardManifest(dir, PAIR_SHARD_FILE, "patch --pairs");
}

function report(result: PatchResult, where: string, json: boolean | undefined): void {
  if (json) printJson({ out: where, ...resultJson(result) });
  else
    process.stdout.write(
      `Patched ${result.perPrompt.clean.length} pairs (${result.target}, [${result.axes.join(", ")}] = [${result.shape.join(", ")}]): ` +
        `logit difference clean ${result.clean.toFixed(4)}, corrupted ${result.corrupted.toFixed(4)}. Full result: ${where}\n`,
    );
}

export async function runPatchPairs(opts: PatchOptions, cmd: Command): Promise<void> {
  rejectIgnoredFlags(
    cmd,
    {
      clean: "--clean",
      corrupted: "--corrupted",
      answer: "--answer",
      wrong: "--wrong",
      html: "--html",
      perPrompt: "--per-prompt",
    },
    "with --pairs (the file gives each pair's prompts and answers; result.json holds every value)",
  );
  if (opts.method === "compare")
    throw new UsageError("--method compare is not available with --pairs: use exact or attribution.");
  if (!["exact", "attribution"].includes(opts.method))
    throw new UsageError(`Unknown --method "${opts.method}": use exact or attribution`);
  if (!opts.out) throw new UsageError("--pairs writes a directory: pass --out DIR.");
  const shard = shardOption(opts.shard);
  const { readPromptFile } = await import("../studies/prompts.ts");
  let pairs: ReturnType<typeof readPromptFile>;
  try {
    pairs = readPromptFile(opts.pairs!);
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  if (pairs.length === 0) throw new UsageError(`${opts.pairs} holds no pairs.`);
  const problem = pairDirProblem(opts.out, opts.resume);
  if (problem) throw new UsageError(problem);
  const settings: PairShardSettings = {
    model: opts.model,
    pairsFile: opts.pairs!,
    pairsSha256: fileSha256(opts.pairs!),
    pairCount: pairs.length,
    target: opts.target,
    targetOptions: { layer: opts.layer, pos: opts.pos, byPos: opts.byPos },
    method: opts.method as "exact" | "attribution",
    batchSize: opts.batchSize,
    prependBos: opts.prependBos,
  };
  const shardPath = join(opts.out, PAIR_SHARD_FILE);
  if (existsSync(shardPath)) {
    sameShardRun(
      readShard(opts.out),
      { settings, shard },
      opts.out,
      "model, pairs file, target, method or batch size",
    );
    process.stderr.write(
      `Shard ${shard.index}/${shard.count} is already done in ${opts.out}: nothing to run.\n`,
    );
    return;
  }
  const { TARGET_NAMES, targetFromName } = await import("../patching/targets.ts");
  if (!(TARGET_NAMES as readonly string[]).includes(opts.target))
    throw new UsageError(`Unknown --target "${opts.target}": use one of ${TARGET_NAMES.join(", ")}`);
  const target = targetFromName(opts.target, { layer: opts.layer, pos: opts.pos, perPosition: opts.byPos });
  const model = await loadModelFromOptions(opts);
  try {
    for (const [i, p] of pairs.entries())
      for (const [flag, text] of [
        ["answer", p.answer],
        ["wrong", p.wrong],
      ] as const)
        try {
          model.toSingleToken(text);
        } catch (err) {
          throw new UsageError(
            `${opts.pairs} pair ${i}: ${flag} ${JSON.stringify(text)}: ${(err as Error).message}`,
          );
        }
    // A per-position target lines positions up across pairs: refused now, not after the first batches.
    const { planTarget } = await import("../patching/targets.ts");
    const lengths = pairs.map((p) => model.toTokens(p.clean, { prependBos: opts.prependBos }).length);
    if (
      planTarget(target, model.cfg, Math.max(...lengths)).axes.includes("pos") &&
      lengths.some((n) => n !== lengths[0])
    ) {
      const other = lengths.findIndex((n) => n !== lengths[0]);
      throw new UsageError(
        `--target ${opts.target} patches one position at a time, but the pairs of ${opts.pairs} differ in token length (pair 0: ${lengths[0]} tokens, pair ${other}: ${lengths[other]}): a position would be a different word in different pairs. Give pairs of one token length, or a target over whole layers or heads (e.g. head_all).`,
      );
    }
    const { createProgress, progressTo } = await import("../util/progress.ts");
    const bar = createProgress({ label: "Patching pairs", total: 0, quiet: opts.json, unit: "pairs" });
    const data = await withCtrlC((signal) =>
      patchPairShard(model, {
        pairs,
        settings,
        target,
        shard,
        signal,
        onBatch: progressTo(bar),
      }),
    );
    bar.stop();
    if (data === null) {
      process.stderr.write("Stopped: nothing was written. Run the same command again.\n");
      process.exitCode = 130;
      return;
    }
    if (
      writePairShard(data, { out: opts.out, shardPath, shard, json: opts.json, mergeCommand: "patch-merge" })
    )
      return;
    const result = combinePairShards([{ where: opts.out, data }]);
    writeFileAtomic(join(opts.out, RESULT_FILE), `${JSON.stringify(fullJson(result))}\n`);
    report(result, join(opts.out, RESULT_FILE), opts.json);
  } finally {
    model.dispose();
  }
}

/** `patch-merge DIR… --out DIR`: the shards' result, as one process would give it. */
export function mergePatchShards(dirs: readonly string[], out: string, json?: boolean): void {
  const result = mergePairShardDirs(dirs, out, json, {
    problem: (dir) => pairDirProblem(dir, false),
    read: readShard,
    combine: combinePairShards,
    file: RESULT_FILE,
    text: (r) => `${JSON.stringify(fullJson(r))}\n`,
  });
  report(result, join(out, RESULT_FILE), json);
}
