/**
 * Every file or directory circuitscope writes goes through here: it is built under a temporary name beside
 * its target and renamed into place, so a reader (or the user after a crash) sees the old output or the
 * new one, never half of one. Temporary paths are registered while they exist; a failure removes them in
 * `finally`, and a signal that ends the process (src/util/interrupt.ts) removes every live one first.
 */
import { randomBytes } from "node:crypto";
import { mkdirSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { basename, dirname, join, resolve } from "node:path";
import { onInterruptExit } from "./interrupt.ts";

const liveTemps = new Set<string>();
let handlersInstalled = false;

/** Marks every temporary name this module makes, so tests (and people) can recognise leftovers. */
export const TEMP_MARK = ".circuitscope-tmp-";

function removeLiveTemps(): void {
  for (const path of liveTemps) rmSync(path, { recursive: true, force: true });
  liveTemps.clear();
}

function installHandlers(): void {
  if (handlersInstalled) return;
  handlersInstalled = true;
  // Not while a command stops its own work (an index saving its last checkpoint needs its temporary
  // files): only when the signal ends the process.
  onInterruptExit(removeLiveTemps);
  process.on("exit", removeLiveTemps);
}

/** A fresh temporary name in the target's own directory (same file system, so rename is atomic). */
export function tempPathFor(target: string): string {
  const abs = resolve(target);
  return join(dirname(abs), `${TEMP_MARK}${basename(abs)}-${process.pid}-${randomBytes(4).toString("hex")}`);
}

/**
 * Runs `build(tmp)` to create a file or directory at a registered temporary path, then renames it onto
 * `target`. The temporary path is gone afterwards whether `build` succeeded, threw, or a signal came.
 * `commit(tmp)`, when given, puts the finished temporary path in place instead of the plain rename
 * (a report directory swaps with an earlier one).
 */
export async function writeAtomically<T>(
  target: string,
  build: (tmp: string) => T | Promise<T>,
  opts: { commit?: (tmp: string) => void } = {},
): Promise<T> {
  const tmp = beginTemp(target);
  try {
    const value = await build(tmp);
    if (opts.commit) opts.commit(tmp);
    else renameSync(tmp, resolve(target));
    return value;
  } catch (err) {
    throw blameTarget(err, tmp, target);
  } finally {
    endTemp(tmp);
  }
}

/** Synchronous `writeAtomically` for a single file's contents. */
export function writeFileAtomic(path: string, contents: string | NodeJS.ArrayBufferView): void {
  const tmp = beginTemp(path);
  try {
    writeFileSync(tmp, contents);
    renameSync(tmp, resolve(path));
  } catch (err) {
    throw blameTarget(err, tmp, path);
  } finally {
    endTemp(tmp);
  }
}

/** Synchronous: `build(tmp)` writes the temporary file (e.g. in chunks), which is then renamed onto `path`. */
export function writeFileAtomicWith(path: string, build: (tmp: string) => void): void {
  const tmp = beginTemp(path);
  try {
    build(tmp);
    renameSync(tmp, resolve(path));
  } catch (err) {
    throw blameTarget(err, tmp, path);
  } finally {
    endTemp(tmp);
  }
}

/** A file-system error about the temporary name is reported against the path the user asked for. */
function blameTarget(err: unknown, tmp: string, target: string): unknown {
  const sys = err as NodeJS.ErrnoException;
  if (sys && typeof sys === "object" && sys.path === tmp) sys.path = resolve(target);
  return err;
}

function beginTemp(target: string): string {
  mkdirSync(dirname(resolve(target)), { recursive: true });
  installHandlers();
  const tmp = tempPathFor(target);
  liveTemps.add(tmp);
  return tmp;
}

function endTemp(tmp: string): void {
  liveTemps.delete(tmp);
  rmSync(tmp, { recursive: true, force: true });
}

/** Temporary paths currently registered (for tests). */
export function liveTempPaths(): string[] {
  return [...liveTemps];
}
