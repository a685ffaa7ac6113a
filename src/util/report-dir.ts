/**
 * A report directory carries a marker file saying circuitscope wrote it. Only such a directory (or an
 * empty one) is ever replaced: anything else at `--out` may be the user's own work.
 */
import { existsSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { tempPathFor, writeAtomically } from "./atomic-write.ts";

export const REPORT_MARKER = ".circuitscope-report.json";
export const REPORT_SCHEMA = "circuitscope-report/1";

export type ReportDirState = "absent" | "empty" | "report" | "other" | "not-a-directory";

export function reportDirState(dir: string): ReportDirState {
  if (!existsSync(dir)) return "absent";
  if (!statSync(dir).isDirectory()) return "not-a-directory";
  if (readdirSync(dir).length === 0) return "empty";
  try {
    const marker = JSON.parse(readFileSync(join(dir, REPORT_MARKER), "utf8")) as { schema?: unknown };
    if (marker?.schema === REPORT_SCHEMA) return "report";
  } catch {
    // no marker, or not ours
  }
  return "other";
}

/**
 * Why `dir` may not receive a report (null if it may): it holds something circuitscope did not write,
 * or it is an earlier report and `overwrite` was not given. `flag` names the option in messages.
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
  if (state === "report" && !opts.overwrite)
    return `${opts.flag} ${dir} holds an earlier report: add --overwrite to replace it, or choose a new ${opts.flag}.`;
  return null;
}

/**
 * Builds a report in a temporary directory beside `dir` (with its marker) and swaps it into place; an
 * earlier report at `dir` is replaced only after the new one is complete.
 */
export async function writeReportDir<T>(
  dir: string,
  opts: { overwrite?: boolean; flag: string; command: string },
  build: (tmp: string) => T | Promise<T>,
): Promise<T> {
  const target = resolve(dir);
  const problem = reportDirProblem(target, opts);
  if (problem) throw new Error(problem);
  return writeAtomically(
    target,
    async (tmp) => {
      const value = await build(tmp);
      writeFileSync(
        join(tmp, REPORT_MARKER),
        `${JSON.stringify({ schema: REPORT_SCHEMA, command: opts.command, written: new Date().toISOString() })}\n`,
      );
      return value;
    },
    {
      replace: () => {
        // Re-checked at the last moment: only an empty directory or our own report is moved away.
        const state = reportDirState(target);
        if (state === "absent") return;
        if (state !== "empty" && state !== "report") throw new Error(reportDirProblem(target, opts) ?? "");
        const old = tempPathFor(target);
        renameSync(target, old);
        rmSync(old, { recursive: true, force: true });
      },
    },
  );
}
