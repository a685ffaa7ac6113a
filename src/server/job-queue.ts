/**
 * FIFO queue of model runs: one runs at a time (the model lives in a single worker), the rest wait their
 * turn. The line is bounded (a full queue refuses new jobs rather than piling up hours of work), jobs
 * report progress, can be cancelled while queued or running, are cancelled when the last client watching
 * them goes away. A finished background job is kept so a page can fetch its result later — bounded by the
 * bytes its results take, oldest dropped first; a quick run (`run()`) is dropped as soon as its caller has
 * the result, since no client was ever given its id.
 */
import { randomBytes } from "node:crypto";
import { EventEmitter } from "node:events";

export type JobStatus = "queued" | "running" | "done" | "failed" | "cancelled";

export interface JobProgress {
  done: number;
  total: number;
}

export interface JobView {
  id: string;
  kind: string;
  status: JobStatus;
  progress: JobProgress | null;
  /** Place in line while queued (0 = next). */
  position?: number;
  result?: unknown;
  error?: { message: string; fix?: string };
  createdAt: string;
}

/** What a runner gets: progress reporting, and a signal that flips when the job is cancelled. */
export interface JobContext {
  signal: AbortSignal;
  progress(p: JobProgress): void;
}

export type JobRunner = (kind: string, params: unknown, ctx: JobContext) => Promise<unknown>;

interface Job {
  id: string;
  kind: string;
  params: unknown;
  status: JobStatus;
  progress: JobProgress | null;
  result?: unknown;
  error?: { message: string; fix?: string };
  createdAt: Date;
  /** Bytes of the finished job's JSON view (its result, mostly): what keeping it costs. */
  bytes: number;
  /** Clients following the job (a waiting request, an event stream); the last one leaving cancels it. */
  watchers: number;
  abort: AbortController;
  settled: Promise<void>;
  settle: () => void;
}

export class JobCancelledError extends Error {
  constructor() {
    super("The job was cancelled");
  }
}

/** Refused submission: `maxQueue` jobs are already queued or running. */
export class QueueFullError extends Error {
  constructor(readonly maxQueue: number) {
    super(`The job queue is full (${maxQueue} jobs queued or running).`);
  }
}

export interface JobQueueOptions {
  /** Bytes of finished jobs' JSON views kept for later reads (oldest dropped first). */
  keepBytes?: number;
  /** Most jobs queued or running at once; more are refused with QueueFullError. */
  maxQueue?: number;
}

export const DEFAULT_MAX_QUEUE = 16;
/** Enough for dozens of patching or circuit results (tens to hundreds of KiB each as JSON). */
export const DEFAULT_KEEP_BYTES = 64 * 1024 * 1024;

/** 128 random bits: ids cannot be guessed or enumerated to read another run's prompts. */
function newJobId(): string {
  return randomBytes(16).toString("hex");
}

export class JobQueue {
  private readonly jobs = new Map<string, Job>();
  private readonly waiting: Job[] = [];
  private running: Job | null = null;
  /** Finished jobs still kept, oldest first, and the bytes they take. */
  private readonly finished: Job[] = [];
  private finishedBytes = 0;
  private readonly keepBytes: number;
  readonly maxQueue: number;
  /** Emits "update" with a JobView whenever a job's status or progress changes. */
  readonly events = new EventEmitter();

  constructor(
    private readonly runner: JobRunner,
    opts: JobQueueOptions = {},
  ) {
    this.keepBytes = opts.keepBytes ?? DEFAULT_KEEP_BYTES;
    this.maxQueue = opts.maxQueue ?? DEFAULT_MAX_QUEUE;
    this.events.setMaxListeners(0);
  }

  /** Queues a job; throws QueueFullError when `maxQueue` jobs are already queued or running. */
  submit(kind: string, params: unknown): JobView {
    if (this.waiting.length + (this.running ? 1 : 0) >= this.maxQueue)
      throw new QueueFullError(this.maxQueue);
    let settle = () => {};
    const settled = new Promise<void>((resolve) => {
      settle = resolve;
    });
    const job: Job = {
      id: newJobId(),
      kind,
      params,
      status: "queued",
      progress: null,
      createdAt: new Date(),
      bytes: 0,
      watchers: 0,
      abort: new AbortController(),
      settled,
      settle,
    };
    this.jobs.set(job.id, job);
    this.waiting.push(job);
    queueMicrotask(() => this.pump());
    return this.view(job);
  }

  /**
   * Runs a job and waits for it: resolves with its result, rejects with its error. The job is cancelled
   * (JobCancelledError) if `signal` aborts first: the caller gave up or went away. Once settled the job is
   * forgotten: the caller holds the result, and nobody else knows the id.
   */
  async run(kind: string, params: unknown, signal?: AbortSignal): Promise<unknown> {
    const { id } = this.submit(kind, params);
    const job = this.jobs.get(id) as Job;
    if (signal) {
      const release = this.watch(id);
      if (signal.aborted) release();
      else signal.addEventListener("abort", release, { once: true });
      void job.settled.then(() => signal.removeEventListener("abort", release));
    }
    await job.settled;
    this.forget(job);
    if (job.status === "done") return job.result;
    if (job.status === "cancelled") throw new JobCancelledError();
    throw Object.assign(new Error(job.error?.message ?? "job failed"), { fix: job.error?.fix });
  }

  get(id: string): JobView | undefined {
    const job = this.jobs.get(id);
    return job && this.view(job);
  }

  /** Resolves once the job has finished (done, failed or cancelled). */
  async settled(id: string): Promise<JobView | undefined> {
    const job = this.jobs.get(id);
    if (!job) return undefined;
    await job.settled;
    return this.view(job);
  }

  /**
   * Registers a client following the job; call the returned function when it goes away. When the last
   * watcher leaves an unfinished job, nobody will read its result, so it is cancelled.
   */
  watch(id: string): () => void {
    const job = this.jobs.get(id);
    if (!job) return () => {};
    job.watchers++;
    let released = false;
    return () => {
      if (released) return;
      released = true;
      if (--job.watchers === 0) this.cancel(id);
    };
  }

  /** Cancels a queued or running job; returns false if there is no such job or it had already finished. */
  cancel(id: string): boolean {
    const job = this.jobs.get(id);
    if (!job || (job.status !== "queued" && job.status !== "running")) return false;
    job.abort.abort();
    if (job.status === "queued") {
      this.waiting.splice(this.waiting.indexOf(job), 1);
      this.finish(job, "cancelled");
    }
    // A running job stops at its next progress check; the runner then rejects and pump() finishes it.
    return true;
  }

  /** Cancels everything (server shutdown). */
  cancelAll(): void {
    for (const job of [...this.waiting]) this.cancel(job.id);
    if (this.running) this.cancel(this.running.id);
  }

  private async pump(): Promise<void> {
    if (this.running) return;
    const job = this.waiting.shift();
    if (!job) return;
    this.running = job;
    job.status = "running";
    this.emit(job);
    try {
      const result = await this.runner(job.kind, job.params, {
        signal: job.abort.signal,
        progress: (p) => {
          job.progress = p;
          this.emit(job);
        },
      });
      if (job.abort.signal.aborted) this.finish(job, "cancelled");
      else {
        job.result = result;
        this.finish(job, "done");
      }
    } catch (err) {
      if (job.abort.signal.aborted) this.finish(job, "cancelled");
      else {
        const e = err as Error & { fix?: string };
        job.error = { message: e.message ?? String(err), ...(e.fix ? { fix: e.fix } : {}) };
        this.finish(job, "failed");
      }
    } finally {
      this.running = null;
      void this.pump();
    }
  }

  private finish(job: Job, status: JobStatus): void {
    job.status = status;
    job.params = undefined; // prompts can be long; the result is what is kept
    const view = this.view(job);
    job.bytes = Buffer.byteLength(JSON.stringify(view));
    this.finished.push(job);
    this.finishedBytes += job.bytes;
    this.pruneFinished();
    this.events.emit("update", view);
    job.settle();
  }

  /** Finished jobs kept and the bytes of their JSON views (what `keepBytes` bounds). */
  retained(): { jobs: number; bytes: number } {
    return { jobs: this.finished.length, bytes: this.finishedBytes };
  }

  private forget(job: Job): void {
    const i = this.finished.indexOf(job);
    if (i >= 0) {
      this.finished.splice(i, 1);
      this.finishedBytes -= job.bytes;
    }
    this.jobs.delete(job.id);
  }

  private emit(job: Job): void {
    this.events.emit("update", this.view(job));
  }

  /** Drops the oldest finished jobs until the rest fit in `keepBytes` (the newest is kept even if larger). */
  private pruneFinished(): void {
    while (this.finishedBytes > this.keepBytes && this.finished.length > 1) this.forget(this.finished[0]);
  }

  private view(job: Job): JobView {
    const position = job.status === "queued" ? this.waiting.indexOf(job) : undefined;
    return {
      id: job.id,
      kind: job.kind,
      status: job.status,
      progress: job.progress,
      ...(position !== undefined ? { position } : {}),
      ...(job.status === "done" ? { result: job.result } : {}),
      ...(job.error ? { error: job.error } : {}),
      createdAt: job.createdAt.toISOString(),
    };
  }
}
