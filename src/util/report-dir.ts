/**
 * A report directory carries a marker file saying circuitscope wrote it and listing every file it wrote.
 * Only such a directory holding nothing else (or an empty one) is ever replaced: anything else at `--out`
 * may be the user's own work. The new report is built beside the old one and swapped in so that at every
 * instant one complete report is at the path (docs/outputs-and-errors.md).
 */
import {
  existsSync,
  lstatSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmdirSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { basename, dirname, join, relative, resolve, sep } from "node:path";
import { TEMP_MARK, tempPathFor, writeAtomically } from "./atomic-write.ts";
import { outputInPlace } from "./interrupt.ts";
import { mountPointOf } from "./mount-point.ts";
import { renameExchange } from "./rename-exchange.ts";

export const REPORT_MARKER = ".circuitscope-report.json";
/** Where a marker is written before it is renamed into place. */
const MARKER_PART = `${REPORT_MARKER}.part`;
export const REPORT_SCHEMA = "circuitscope-report/1";

/** The marker's content. `files` (relative, "/"-separated) is what circuitscope wrote; absent while building. */
interface ReportMarker {
  schema: typeof REPORT_SCHEMA;
  command: string;
  written: string;
  files?: string[];
  building?: boolean;
}

export type ReportDirState = "absent" | "empty" | "report" | "other" | "not-a-directory";

function readMarker(dir: string): ReportMarker | null {
  try {
    const marker = JSON.parse(readFileSync(join(dir, REPORT_MARKER), "utf8")) as ReportMarker;
    return marker?.schema === REPORT_SCHEMA ? marker : null;
  } catch {
    return null; // no marker, or not ours
  }
}

export function reportDirState(dir: string): ReportDirState {
  if (!existsSync(dir)) return "absent";
  if (!lstatSync(dir).isDirectory()) return "not-a-directory";
  if (readdirSync(dir).length === 0) return "empty";
  return readMarker(dir) ? "report" : "other";
}

/** Every file, link and directory under `dir`, relative and "/"-separated, directories last-in-first-out. */
function entriesUnder(dir: string): { path: string; isDir: boolean }[] {
  return readdirSync(dir, { recursive: true, withFileTypes: true }).map((e) => ({
    path: relative(dir, join(e.parentPath, e.name)).split(sep).join("/"),
    isDir: e.isDirectory(),
  }));
}

/**
 * What in an earlier report circuitscope did not write: entries its marker does not list (directories
 * holding listed files excepted). A marker without a file list (never finished) vouches for nothing.
 */
export function foreignEntries(dir: string): string[] {
  const listed = new Set(readMarker(dir)?.files ?? []);
  const parents = new Set<string>();
  for (const f of listed) for (let d = dirname(f); d !== "."; d = dirname(d)) parents.add(d);
  return entriesUnder(dir)
    .filter((e) => e.path !== REPORT_MARKER && !(e.isDir ? parents : listed).has(e.path))
    .map((e) => e.path)
    .sort();
}

/**
 * Why `dir` may not receive a report (null if it may): it holds something circuitscope did not write,
 * it is an earlier report and `overwrite` was not given, or it is a mount point (which cannot be
 * replaced by a rename). `flag` names the option in messages.
 */
export function reportDirProblem(dir: string, opts: { overwrite?: boolean; flag: string }): string | null {
  const state = reportDirState(dir);
  if (state === "not-a-directory")
    return `${opts.flag} ${dir} is a file, not a directory: choose a new ${opts.flag} directory.`;
  if (state === "other")
    return (
      `${opts.flag} ${dir} already exists and is not a circuitscope report (no ${REPORT_MARKER}): ` +
      `nothing was changed. Choose a new ${opts.flag} directory, or move your files away first.`
    );
  if (state === "report") {
    const foreign = foreignEntries(dir);
    if (foreign.length > 0) {
      const shown =
        foreign.slice(0, 5).join(", ") + (foreign.length > 5 ? ` and ${foreign.length - 5} more` : "");
      return (
        `${opts.flag} ${dir} holds an earlier report plus files circuitscope did not write (${shown}): ` +
        `nothing was changed. Move them out of ${dir}, or choose a new ${opts.flag}.`
      );
    }
    if (!opts.overwrite)
      return `${opts.flag} ${dir} holds an earlier report: add --overwrite to replace it, or choose a new ${opts.flag}.`;
  }
  if (state !== "absent" && mountPointOf(dir))
    return (
      `${opts.flag} ${dir} is a mount point (a volume): a report is put in place by a rename, which a ` +
      `mount point does not allow. Pass a directory inside it, e.g. ${opts.flag} ${join(dir, "report")}.`
    );
  return null;
}

/**
 * Earlier runs' leftovers beside `dir` that circuitscope provably made: `.circuitscope-tmp-NAME-PID-*`
 * directories of processes no longer running that are empty, or carry our marker and nothing it does not
 * list (or are still marked building). A complete report among them is put back at `dir` if `dir` is missing (a run
 * killed between the two renames of the fallback swap); the rest are removed. Returns what was done.
 */
export function tidyReportLeftovers(dir: string): { restored: string | null; removed: string[] } {
  const target = resolve(dir);
  const parent = dirname(target);
  const prefix = `${TEMP_MARK}${basename(target)}-`;
  const done = { restored: null as string | null, removed: [] as string[] };
  if (!existsSync(parent)) return done;
  for (const name of readdirSync(parent).sort()) {
    const pid = Number(/^(\d+)-[0-9a-f]+$/.exec(name.slice(prefix.length))?.[1]);
    if (!name.startsWith(prefix) || !Number.isInteger(pid) || processIsRunning(pid)) continue;
    const path = join(parent, name);
    if (!lstatSync(path).isDirectory()) continue;
    if (readdirSync(path).length === 0) {
      rmdirSync(path); // killed before its marker was written: an empty directory holds nothing to lose
      done.removed.push(path);
      continue;
    }
    const marker = readMarker(path);
    if (!marker) {
      // Killed while writing its "building" marker, the first file a run writes: the directory holds that
      // half-written marker and nothing else, so nothing in it can be a user's.
      const entries = readdirSync(path);
      if (entries.length === 1 && entries[0] === MARKER_PART) {
        rmSync(path, { recursive: true, force: true });
        done.removed.push(path);
      }
      continue;
    }
    if (!marker.building && foreignEntries(path).length > 0) continue;
    if (!marker.building && !existsSync(target)) {
      renameSync(path, target);
      done.restored = path;
    } else {
      rmSync(path, { recursive: true, force: true });
      done.removed.push(path);
    }
  }
  return done;
}

function processIsRunning(pid: number): boolean {
  if (pid === process.pid) return true;
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "EPERM"; // alive, someone else's
  }
}

/** The marker is replaced whole (written beside, then renamed): a kill never leaves a half-written one. */
function writeMarker(dir: string, marker: Omit<ReportMarker, "schema" | "written">): void {
  const full: ReportMarker = { schema: REPORT_SCHEMA, ...marker, written: new Date().toISOString() };
  const part = join(dir, MARKER_PART);
  writeFileSync(part, `${JSON.stringify(full)}\n`);
  renameSync(part, join(dir, REPORT_MARKER));
}

/**
 * Builds a report in a temporary directory beside `dir` (created, with a "building" marker, before
 * `build` runs) and swaps it into place; an earlier report at `dir` is replaced only after the new one is
 * complete, and removed only once the new one is at the path.
 */
export async function writeReportDir<T>(
  dir: string,
  opts: { overwrite?: boolean; flag: string; command: string },
  build: (tmp: string) => T | Promise<T>,
): Promise<T> {
  const target = resolve(dir);
  tidyReportLeftovers(target);
  const problem = reportDirProblem(target, opts);
  if (problem) throw new Error(problem);
  return writeAtomically(
    target,
    async (tmp) => {
      mkdirSync(tmp); // a fresh name: EEXIST would be a collision worth failing on
      writeMarker(tmp, { command: opts.command, building: true });
      const value = await build(tmp);
      const files = entriesUnder(tmp)
        .filter((e) => !e.isDir && e.path !== REPORT_MARKER)
        .map((e) => e.path)
        .sort();
      writeMarker(tmp, { command: opts.command, files });
      return value;
    },
    {
      commit: (tmp) => {
        swapInto(tmp, target, opts);
        outputInPlace(target);
      },
    },
  );
}

/** Puts the complete report `tmp` at `target` so that at every instant a complete report is there. */
function swapInto(tmp: string, target: string, opts: { overwrite?: boolean; flag: string }): void {
  // Re-checked at the last moment: only an empty directory or our own report, nothing else in it.
  if (reportDirState(target) === "absent") {
    keepOnBusy(tmp, target, () => renameSync(tmp, target));
    return;
  }
  const problem = reportDirProblem(target, opts);
  if (problem) throw new Error(problem);
  // One step where the OS has it: afterwards tmp holds the earlier report.
  if (keepOnBusy(tmp, target, () => renameExchange(tmp, target))) {
    removeReport(tmp);
    return;
  }
  // Fallback: the earlier report steps aside whole (marked, so the next run restores it should this
  // process die before the next rename) and is removed only once the new one is in place.
  const old = tempPathFor(target);
  keepOnBusy(tmp, target, () => {
    renameSync(target, old);
    try {
      renameSync(tmp, target);
    } catch (err) {
      renameSync(old, target);
      throw err;
    }
  });
  removeReport(old);
}

/**
 * Runs `swap`; when it fails with EBUSY (a mount point not detected up front), the complete new report is
 * kept under a plain name beside the target, and the error says where, so the run's work is not lost.
 */
function keepOnBusy<T>(tmp: string, target: string, swap: () => T): T {
  try {
    return swap();
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "EBUSY") throw err;
    const kept = `${target}-report-${new Date().toISOString().replace(/[:.]/g, "-")}`;
    renameSync(tmp, kept);
    throw new Error(
      `${target} cannot be replaced (EBUSY: it is most likely a mount point). The complete new report was kept ` +
        `at ${kept}: move its files into ${target}, and next time pass a directory inside it, e.g. ${join(target, "report")}.`,
    );
  }
}

/** Removes a report directory marker last, so that a kill half-way leaves a leftover still provably ours. */
function removeReport(dir: string): void {
  for (const name of readdirSync(dir))
    if (name !== REPORT_MARKER) rmSync(join(dir, name), { recursive: true, force: true });
  rmSync(dir, { recursive: true, force: true });
}
