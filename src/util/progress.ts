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

/** A progress bar on stderr when it is a TTY; silent otherwise so pipes and `--json` stay clean. */
export function createProgress(opts: ProgressOptions): Progress {
  if (opts.quiet || !process.stderr.isTTY) return NOOP;
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
