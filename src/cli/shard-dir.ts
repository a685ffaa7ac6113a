/**
 * The --out directory of a sharded command (a shard's, a single run's or a merge's): new, empty, or holding
 * only what circuitscope's sharded commands write there; a finished shard is kept only with --resume.
 */
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, readdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { writeFileAtomic } from "../util/atomic-write.ts";
import { resolveShard, type Shard } from "../util/shard.ts";
import { printJson, UsageError } from "./common.ts";

/** Why `dir` cannot take this output (null if it can). `ours` lists the top-level names the command writes. */
export function shardDirProblem(
  dir: string,
  opts: { ours: readonly string[]; manifest: string; resume?: boolean; what: string; flagWhy: string },
): string | null {
  if (!existsSync(dir)) return null;
  if (!statSync(dir).isDirectory()) return `--out ${dir} is a file: ${opts.flagWhy}, --out is a directory.`;
  const foreign = readdirSync(dir).filter((f) => !opts.ours.includes(f));
  if (foreign.length > 0)
    return `--out ${dir} holds files circuitscope did not write (${foreign.slice(0, 3).join(", ")}): choose a new or empty directory; nothing was changed.`;
  if (existsSync(join(dir, opts.manifest)) && !opts.resume)
    return `${dir} already holds a ${opts.what}: pass --resume to keep it (a finished shard is not run again), or choose another --out.`;
  return null;
}

/** A shard's manifest, or a usage error saying which directory lacks it or holds a damaged one. */
export function readShardManifest<T>(dir: string, file: string, command: string): T {
  const path = join(dir, file);
  try {
    return JSON.parse(readFileSync(path, "utf8")) as T;
  } catch (err) {
    throw new UsageError(
      existsSync(path)
        ? `${path} is not readable (${(err as Error).message}): run that shard again.`
        : `${dir} holds no ${file}: give the --out directories of ${command} … --shard i/n.`,
    );
  }
}

/** `--shard` (default: the whole file as one shard), any problem a usage error. */
export function shardOption(spec: string | undefined): Shard {
  try {
    return resolveShard(spec ?? "0/1");
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
}

/** SHA-256 of a file's bytes, recorded in manifests so that shards of different inputs are not merged. */
export function fileSha256(path: string): string {
  return createHash("sha256").update(readFileSync(path)).digest("hex");
}

/**
 * Whether the manifest already in --out is this shard of this run (then --resume keeps it); a usage error
 * when it is another run's or another shard's. `differ` names what the settings hold.
 */
export function sameShardRun<S>(
  done: { settings: S; shard: Shard },
  now: { settings: S; shard: Shard },
  out: string,
  differ: string,
): void {
  if (
    JSON.stringify(done.settings) !== JSON.stringify(now.settings) ||
    done.shard.index !== now.shard.index ||
    done.shard.count !== now.shard.count
  )
    throw new UsageError(
      `Cannot resume ${out}: it holds shard ${done.shard.index}/${done.shard.count} of another run (${differ} differ). Choose another --out.`,
    );
}

/** The merge's per-shard figures on stderr: items, time and throughput. */
export function reportShardTimes(
  shards: readonly { shard: Shard; items: number; seconds: number }[],
  unit: string,
): void {
  for (const s of [...shards].sort((a, b) => a.shard.index - b.shard.index))
    process.stderr.write(
      `  shard ${s.shard.index}/${s.shard.count}: ${s.items} ${unit} in ${s.seconds.toFixed(1)} s (${(s.items / Math.max(s.seconds, 1e-9)).toFixed(2)} ${unit}/s)\n`,
    );
}

/**
 * A pairs merge (`patch-merge`, `circuit-merge`): checks --out, reads the shards, combines them (its errors
 * usage errors naming the shard), writes `file` in --out atomically and prints the per-shard figures.
 */
export function mergePairShardDirs<
  D extends { shard: Shard; pairs: { start: number; end: number }; seconds: number },
  R,
>(
  dirs: readonly string[],
  out: string,
  json: boolean | undefined,
  kind: {
    problem: (dir: string) => string | null;
    read: (dir: string) => D;
    combine: (shards: { where: string; data: D }[]) => R;
    file: string;
    text: (result: R) => string;
  },
): R {
  const problem = kind.problem(out);
  if (problem) throw new UsageError(problem);
  const shards = dirs.map((dir) => ({ where: dir, data: kind.read(dir) }));
  let result: R;
  try {
    result = kind.combine(shards);
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  mkdirSync(out, { recursive: true });
  writeFileAtomic(join(out, kind.file), kind.text(result));
  if (!json)
    reportShardTimes(
      shards.map(({ data }) => ({ ...data, items: data.pairs.end - data.pairs.start })),
      "pairs",
    );
  return result;
}

/**
 * Writes one shard's data (atomically) into `out`; for a shard of several, reports where it went and how to
 * merge, and returns true (the caller stops there). A single run returns false: the caller combines it.
 */
export function writePairShard(
  data: { pairs: { start: number; end: number }; seconds: number },
  o: { out: string; shardPath: string; shard: Shard; json?: boolean; mergeCommand: string },
): boolean {
  mkdirSync(o.out, { recursive: true });
  writeFileAtomic(o.shardPath, `${JSON.stringify(data)}\n`);
  if (o.shard.count <= 1) return false;
  if (o.json) printJson({ out: o.shardPath, shard: o.shard, pairs: data.pairs, seconds: data.seconds });
  else
    process.stdout.write(
      `Shard ${o.shard.index}/${o.shard.count}: pairs ${data.pairs.start}-${data.pairs.end - 1} in ${o.shardPath} (${data.seconds.toFixed(1)} s). Merge every shard with: circuitscope ${o.mergeCommand} DIR… --out DIR\n`,
    );
  return true;
}
