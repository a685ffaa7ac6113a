/**
 * Every command that writes checks all its output paths here, before it loads a model or starts any long
 * work: a wrong --out must cost the user a second, not the run.
 */
import { accessSync, constants, existsSync, statSync } from "node:fs";
import { dirname, resolve } from "node:path";
import { indexDirProblem } from "../neurons/index-store.ts";
import { reportDirProblem, tidyReportLeftovers } from "../util/report-dir.ts";
import { UsageError } from "./common.ts";

export interface OutputPath {
  /** The value given (undefined when the option was not used: skipped). */
  path: string | undefined;
  /** The option's name as the user typed it, e.g. "--html". */
  flag: string;
  /**
   * file: one file (replaced if it exists); dir: a directory written into; report: a report directory;
   * index: a neuron index directory.
   */
  kind: "file" | "dir" | "report" | "index";
  /** report: whether --overwrite was given. */
  overwrite?: boolean;
  /** index: whether --resume was given. */
  resume?: boolean;
}

/** Throws a UsageError naming the first output path that cannot be written, and how to fix it. */
export function checkOutputPaths(outputs: readonly OutputPath[]): void {
  for (const out of outputs) {
    if (out.path === undefined) continue;
    const problem = outputProblem({ ...out, path: out.path });
    if (problem) throw new UsageError(problem);
  }
}

function outputProblem(out: OutputPath & { path: string }): string | null {
  const path = resolve(out.path);
  if (out.path.trim() === "") return `${out.flag} is empty: give a path.`;
  // An earlier run killed mid-swap may have left the old report beside the path: put it back first.
  if (out.kind === "report") tidyReportLeftovers(path);
  if (existsSync(path)) {
    const isDir = statSync(path).isDirectory();
    if (out.kind === "file" && isDir)
      return `${out.flag} ${out.path} is a directory: give a file path, e.g. ${out.path.replace(/\/+$/, "")}/out.html.`;
    if ((out.kind === "dir" || out.kind === "index") && !isDir)
      return `${out.flag} ${out.path} is a file, not a directory: choose a directory path.`;
    if (out.kind === "report") {
      const problem = reportDirProblem(out.path, { overwrite: out.overwrite, flag: out.flag });
      if (problem) return problem;
    }
    if (out.kind === "index") {
      const problem = indexDirProblem(out.path, { resume: out.resume, flag: out.flag });
      if (problem) return problem;
    }
    // A directory written into needs to be writable itself; a file or report is replaced by a rename
    // in its parent, which must be writable.
    return writableProblem(out.kind === "dir" || out.kind === "index" ? path : dirname(path), out);
  }
  return writableProblem(dirname(path), out);
}

/** The nearest existing ancestor of `dir` must be a writable directory (missing ones are created). */
function writableProblem(dir: string, out: OutputPath & { path: string }): string | null {
  let existing = dir;
  while (!existsSync(existing)) existing = dirname(existing);
  if (!statSync(existing).isDirectory())
    return `${out.flag} ${out.path}: ${existing} is a file, so nothing can be created under it. Choose another path.`;
  try {
    accessSync(existing, constants.W_OK | constants.X_OK);
  } catch {
    return `${out.flag} ${out.path}: no permission to write in ${existing}. Choose a path in a directory you can write to.`;
  }
  return null;
}
