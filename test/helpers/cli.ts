import { type ChildProcessWithoutNullStreams, spawn } from "node:child_process";
import { join } from "node:path";
import { REPO_ROOT } from "./fixture.ts";

export interface CliResult {
  code: number;
  /** The signal that ended the process, if one did (then `code` is -1). */
  signal?: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** Starts `bin/circuitscope.js` as a user would, without a terminal (stdin closed at once). */
export function spawnCli(
  args: string[],
  opts: { env?: NodeJS.ProcessEnv; cwd?: string } = {},
): ChildProcessWithoutNullStreams {
  const child = spawn(process.execPath, [join(REPO_ROOT, "bin/circuitscope.js"), ...args], {
    cwd: opts.cwd ?? REPO_ROOT,
    env: { ...process.env, ...opts.env },
  });
  child.stdin.end();
  return child;
}

/** Collects a started CLI process's output and exit status. */
export function cliResult(child: ChildProcessWithoutNullStreams): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d) => {
      stdout += d;
    });
    child.stderr.on("data", (d) => {
      stderr += d;
    });
    child.on("error", reject);
    child.on("close", (code, signal) => resolve({ code: code ?? -1, signal, stdout, stderr }));
  });
}

/**
 * A started CLI process's result; the process is killed (SIGKILL) if the await is abandoned by a failing
 * test, so a regression that ignores signals cannot stall the suite.
 */
export async function finished(child: ChildProcessWithoutNullStreams): Promise<CliResult> {
  try {
    return await cliResult(child);
  } finally {
    child.kill("SIGKILL");
  }
}

/** Runs `bin/circuitscope.js` as a user would, without a terminal. */
export function runCli(args: string[], env: NodeJS.ProcessEnv = {}, cwd?: string): Promise<CliResult> {
  return finished(spawnCli(args, { env, cwd }));
}
