/**
 * The one Ctrl-C path of every command (SIGINT and SIGTERM alike):
 *
 * - while long work runs under `stopOnInterrupt`, the first signal only aborts its AbortSignal: the work
 *   stops at its next safe point, saves what it can (an index writes a final checkpoint) and the command
 *   says how to resume. A write in progress is never cut: its temporary file is still needed.
 * - with no such work (or on a second signal), every registered clean-up runs (the atomic writer's
 *   temporary paths) and the process exits 130/143, as the default action would.
 * - once a command's final output is in place (`outputInPlace`), a signal can no longer lose anything:
 *   the process says so and exits 0, because the command did succeed.
 */

type Signal = "SIGINT" | "SIGTERM";

const stoppers = new Set<AbortController>();
const cleanups = new Set<() => void>();
let completeOutput: string | null = null;
let installed = false;

/** The shell's exit code for a process ended by `signal` (128 + its number). */
export function signalExitCode(signal: Signal): number {
  return signal === "SIGINT" ? 130 : 143;
}

function onSignal(signal: Signal): void {
  const running = [...stoppers].filter((c) => !c.signal.aborted);
  if (running.length > 0) {
    for (const c of running) c.abort(signal);
    return;
  }
  for (const cleanup of cleanups) cleanup();
  if (completeOutput !== null) {
    process.stderr.write(
      `circuitscope: ${signal} came after ${completeOutput} was complete and in place; nothing was lost.\n`,
    );
    process.exit(0);
  }
  process.exit(signalExitCode(signal));
}

/** Installs the SIGINT/SIGTERM handlers (once; idempotent). */
export function installInterruptHandlers(): void {
  if (installed) return;
  installed = true;
  process.on("SIGINT", onSignal);
  process.on("SIGTERM", onSignal);
}

/** Runs `cleanup` (synchronously) before the process exits on a signal; returns its removal. */
export function onInterruptExit(cleanup: () => void): () => void {
  installInterruptHandlers();
  cleanups.add(cleanup);
  return () => cleanups.delete(cleanup);
}

/**
 * Runs `work` with a signal that SIGINT/SIGTERM aborts (its `reason` is the signal's name) instead of
 * ending the process; a second signal ends it. The stopper is removed however `work` ends.
 */
export async function stopOnInterrupt<T>(work: (signal: AbortSignal) => Promise<T>): Promise<T> {
  installInterruptHandlers();
  const stop = new AbortController();
  stoppers.add(stop);
  try {
    return await work(stop.signal);
  } finally {
    stoppers.delete(stop);
  }
}

/** The signal that stopped `signal`'s work, if one did. */
export function stoppedBy(signal: AbortSignal | undefined): Signal | null {
  if (!signal?.aborted) return null;
  return signal.reason === "SIGTERM" ? "SIGTERM" : "SIGINT";
}

/**
 * Records that the command's final output (`what`, e.g. a report directory) is complete and in place:
 * a signal from now on exits 0 instead of reporting a failure that did not happen.
 */
export function outputInPlace(what: string): void {
  completeOutput = what;
}
