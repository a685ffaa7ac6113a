/**
 * FIFO queue of model runs: one runs at a time (the model lives in a single worker), the rest wait their
 * turn. Jobs report progress, can be cancelled while queued or running, and finished jobs are kept (a
 * bounded number) so a page can fetch the result after the fact.
 */
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
  abort: AbortController;
  settled: Promise<void>;
  settle: () => void;
}

export class JobCancelledError extends Error {
  constructor() {
    super("The job was cancelled");
  }
}

export class JobQueue {
  private readonly jobs = new Map<string, Job>();
  private readonly waiting: Job[] = [];
  private running: Job | null = null;
  private nextId = 1;
  /** Emits "update" with a JobView whenever a job's status or progress changes. */
  readonly events = new EventEmitter();

  constructor(
    private readonly runner: JobRunner,
    private readonly keepFinished = 100,
  ) {
    this.events.setMaxListeners(0);
  }

  submit(kind: string, params: unknown): JobView {
    let settle = () => {};
    const settled = new Promise<void>((resolve) => {
      settle = resolve;
    });
    const job: Job = {
      id: String(this.nextId++),
      kind,
      params,
      status: "queued",
      progress: null,
      createdAt: new Date(),
      abort: new AbortController(),
      settled,
      settle,
    };
    this.jobs.set(job.id, job);
    this.waiting.push(job);
    this.pruneFinished();
    queueMicrotask(() => this.pump());
    return this.view(job);
  }

  /** Runs a job and waits for it: resolves with its result, rejects with its error. */
  async run(kind: string, params: unknown): Promise<unknown> {
    const { id } = this.submit(kind, params);
    const job = this.jobs.get(id) as Job;
    await job.settled;
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
    this.emit(job);
    job.settle();
  }

  private emit(job: Job): void {
    this.events.emit("update", this.view(job));
  }

  private pruneFinished(): void {
    const finished = [...this.jobs.values()].filter((j) => j.status !== "queued" && j.status !== "running");
    for (const job of finished.slice(0, Math.max(0, finished.length - this.keepFinished)))
      this.jobs.delete(job.id);
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
