import cliProgress from "cli-progress";

export interface Progress {
  /** Advance by `n` units of work. */
  tick(n?: number): void;
  /** Set the total (e.g. once a sweep's size is known). */
  setTotal(total: number): void;
  stop(): void;
}

export interface ProgressOptions {
  label: string;
  total: number;
  /** Force quiet (e.g. `--json`). Otherwise a bar is drawn only when stderr is a terminal. */
  quiet?: boolean;
  unit?: string;
}

const NOOP: Progress = { tick() {}, setTotal() {}, stop() {} };

/** Seconds between two progress lines in a batch job's log. */
const LINE_SECONDS = 30;

/**
 * Plain lines for a batch job's log (no terminal there): one at the start, one every LINE_SECONDS seconds and
 * one at the end, each with the count, the share done, the rate and the time so far.
 */
function progressLines(opts: ProgressOptions, write: (line: string) => void, now: () => number): Progress {
  let total = opts.total;
  let value = 0;
  const started = now();
  let last = started;
  let stopped = false;
  const line = () => {
    const seconds = (now() - started) / 1000;
    const share = total > 0 ? ` (${((100 * value) / total).toFixed(1)}%)` : "";
    const rate = seconds > 0 ? `, ${(value / seconds).toFixed(0)} ${opts.unit ?? ""}/s` : "";
    write(`${opts.label}: ${value}/${total} ${opts.unit ?? ""}${share}${rate}, ${seconds.toFixed(0)} s\n`);
  };
  // A first line says the work has started (and how much there is), before the first interval passes.
  line();
  return {
    tick(n = 1) {
      value += n;
      if (now() - last >= LINE_SECONDS * 1000) {
        last = now();
        line();
      }
    },
    setTotal(t) {
      total = t;
    },
    stop() {
      if (stopped) return;
      stopped = true;
      line();
    },
  };
}

/** Whether createProgress would show anything (a caller may skip work done only for the bar's total). */
export function progressShown(quiet?: boolean): boolean {
  return !quiet && (process.stderr.isTTY || process.env.CIRCUITSCOPE_PROGRESS === "lines");
}

/**
 * A progress bar on stderr when it is a TTY; silent otherwise so pipes and `--json` stay clean — except that
 * with CIRCUITSCOPE_PROGRESS=lines (set by the Slurm and Kubernetes job files) it writes plain lines to a log.
 */
export function createProgress(
  opts: ProgressOptions,
  env: { lines?: boolean; write?: (line: string) => void; now?: () => number } = {},
): Progress {
  if (opts.quiet) return NOOP;
  if (!process.stderr.isTTY) {
    if (!(env.lines ?? process.env.CIRCUITSCOPE_PROGRESS === "lines")) return NOOP;
    return progressLines(
      opts,
      env.write ?? ((l) => process.stderr.write(l)),
      env.now ?? (() => performance.now()),
    );
  }
  const bar = new cliProgress.SingleBar(
    {
      stream: process.stderr,
      format: `${opts.label} [{bar}] {percentage}% | {value}/{total} ${opts.unit ?? ""} | eta {eta_formatted}`,
      hideCursor: true,
      clearOnComplete: true,
      etaBuffer: 50,
    },
    cliProgress.Presets.shades_classic,
  );
  bar.start(opts.total, 0);
  let value = 0;
  return {
    tick(n = 1) {
      value += n;
      bar.update(value);
    },
    setTotal(total) {
      bar.setTotal(total);
    },
    stop() {
      bar.stop();
    },
  };
}

/** A `(done, total)` callback that moves `bar` to `done` of `total` (work that reports counts, not steps). */
export function progressTo(bar: Progress): (done: number, total: number) => void {
  let shown = 0;
  return (done, total) => {
    bar.setTotal(total);
    bar.tick(done - shown);
    shown = done;
  };
}
