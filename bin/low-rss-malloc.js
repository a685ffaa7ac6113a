// glibc raises its mmap threshold each time a large block is freed, after which the blocks onnxruntime and
// the weight arrays free while a model loads stay in the heap instead of going back to the system: building
// onnxruntime sessions costs ~1.6x their weights where a fixed threshold costs 1.0x. The price is page faults
// on every large activation (forwards 20-50% slower; both measured in docs/benchmarks.md, "Memory"), so it is
// a choice, not the default: with CIRCUITSCOPE_LOW_RSS=1 the CLI trades that speed for memory. glibc reads
// MALLOC_MMAP_THRESHOLD_ only at process start (and Node 20 has no process.execve), so the CLI then
// re-launches itself once with it set. Plain JavaScript with built-in imports only: it runs before tsx or
// the CLI load.
import { spawn } from "node:child_process";
import { constants } from "node:os";
import { isatty } from "node:tty";

/** The environment of the low-RSS mode (bench/memory.ts measures its child with and without it). */
export const LOW_RSS_MALLOC_ENV = Object.freeze({ MALLOC_MMAP_THRESHOLD_: "131072" });

/** Set to 1 for the low-RSS mode: the CLI re-launches itself with LOW_RSS_MALLOC_ENV. */
export const LOW_RSS_VAR = "CIRCUITSCOPE_LOW_RSS";

/** Names the launcher's pid in its child, so the child can tell when the launcher is gone. */
const LAUNCHER_VAR = "CIRCUITSCOPE_LAUNCHER_PID";

/** Signals whose default action dumps core: the child already did; the launcher exits 128 + n instead. */
const CORE_SIGNALS = ["SIGQUIT", "SIGILL", "SIGTRAP", "SIGABRT", "SIGBUS", "SIGFPE", "SIGSEGV", "SIGSYS"];

/** The glibc version this process runs on, or undefined (not Linux, or another C library such as musl). */
export function glibcVersion() {
  if (process.platform !== "linux") return undefined;
  return process.report.getReport().header.glibcVersionRuntime;
}

/**
 * Whether to re-launch: when the user asked for the low-RSS mode, on glibc, unless the variables are already
 * set or a debugger is asked for (it would attach to the launcher, and the child could not open the same
 * inspector port).
 */
export function wantsRelaunch(
  { env, glibc, execArgv } = { env: process.env, glibc: glibcVersion(), execArgv: process.execArgv },
) {
  if (env[LOW_RSS_VAR] !== "1" || glibc === undefined) return false;
  if ([...execArgv, env.NODE_OPTIONS ?? ""].some((arg) => arg.includes("--inspect"))) return false;
  return Object.keys(LOW_RSS_MALLOC_ENV).some((name) => env[name] === undefined);
}

/**
 * Re-runs this node (same execArgv and argv) with LOW_RSS_MALLOC_ENV added when `wantsRelaunch()`, and makes
 * this process end as the child ends. Resolves true once the child runs (the caller must then do nothing
 * more), false when the caller should run the command itself (no re-launch wanted, or spawning failed).
 */
export function relaunchWithLowRssMalloc() {
  if (process.env[LAUNCHER_VAR] === String(process.ppid)) watchLauncher();
  if (!wantsRelaunch()) return Promise.resolve(false);
  const child = spawn(process.execPath, [...process.execArgv, ...process.argv.slice(1)], {
    stdio: "inherit",
    env: { ...process.env, ...LOW_RSS_MALLOC_ENV, [LAUNCHER_VAR]: String(process.pid) },
  });
  // SIGTERM and SIGHUP are passed on. A Ctrl-C typed at a terminal already reaches the child (it is in
  // our foreground process group), so passing SIGINT on as well would deliver it twice: the first stops
  // the work cleanly, the second exits at once. We pass SIGINT on only when none of stdin/stdout/stderr is
  // a terminal — then it came from kill(2) (a test, a supervisor, `kill -INT pid`) and reached us alone.
  // Left over: `kill -INT <pid>` aimed at a CLI whose output is a terminal is not passed on (SIGTERM is),
  // and Ctrl-C at a terminal with all three redirected reaches the child twice (it still exits 130 and
  // leaves no temporary files).
  const fromTerminal = [0, 1, 2].some((fd) => isatty(fd));
  const forward = (signal) => {
    if (signal === "SIGINT" && fromTerminal) return;
    child.kill(signal);
  };
  const signals = ["SIGINT", "SIGTERM", "SIGHUP"];
  for (const signal of signals) process.on(signal, forward);
  return new Promise((resolve) => {
    child.once("spawn", () => resolve(true));
    child.once("error", (err) => {
      for (const signal of signals) process.removeListener(signal, forward);
      process.emitWarning(
        `could not re-launch with a fixed malloc threshold (${err.message}); running without`,
      );
      resolve(false);
    });
    child.once("exit", (code, signal) => {
      if (signal === null) process.exit(code ?? 1);
      const exitCode = 128 + constants.signals[signal];
      // Die by the same signal, so a shell or a parent process sees what it would have seen without us.
      if (!CORE_SIGNALS.includes(signal)) {
        process.removeAllListeners(signal);
        process.kill(process.pid, signal);
      }
      setTimeout(() => process.exit(exitCode), 100); // the signal is ignored here, or dumps core
    });
  });
}

/** In the child: when the launcher dies without passing a signal on (SIGKILL), stop as if sent SIGTERM. */
function watchLauncher() {
  const launcher = process.ppid;
  const timer = setInterval(() => {
    if (process.ppid === launcher) return;
    clearInterval(timer);
    process.kill(process.pid, "SIGTERM");
  }, 1000).unref();
}
