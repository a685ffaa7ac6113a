/**
 * The --out directory of a sharded command (a shard's, a single run's or a merge's): new, empty, or holding
 * only what circuitscope's sharded commands write there; a finished shard is kept only with --resume.
 */
import { existsSync, readdirSync, statSync } from "node:fs";
import { join } from "node:path";

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
