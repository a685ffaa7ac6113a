/** The HTTP thread's handle on the model worker: start it, run one task at a time, relay progress. */
import { Worker } from "node:worker_threads";
import { JobCancelledError, type JobContext } from "./job-queue.ts";
import type { FromWorker, ToWorker, WorkerInfo, WorkerSetup } from "./model-protocol.ts";

interface Pending {
  resolve(value: unknown): void;
  reject(err: Error): void;
  ctx: JobContext;
}

export class ModelHost {
  private readonly worker: Worker;
  private readonly pending = new Map<number, Pending>();
  private nextId = 1;
  private closed = false;
  readonly ready: Promise<WorkerInfo>;

  constructor(setup: WorkerSetup) {
    const spec = setup.load;
    this.worker = new Worker(new URL("./model-worker-boot.mjs", import.meta.url), { workerData: setup });
    this.ready = new Promise<WorkerInfo>((resolve, reject) => {
      this.worker.on("message", (msg: FromWorker) => {
        if (msg.type === "ready") resolve(msg.info);
        else if (msg.type === "fatal")
          reject(
            new Error(
              msg.transcoders
                ? `--transcoders ${setup.transcoders}: ${msg.message}`
                : `Could not load model "${spec.model}": ${msg.message}`,
            ),
          );
        else this.onTaskMessage(msg);
      });
      this.worker.on("error", (err) => {
        reject(err);
        this.failAll(err);
      });
      this.worker.on("exit", (code) => {
        const err = new Error(`The model worker stopped (exit code ${code})`);
        reject(err);
        this.failAll(err);
      });
    });
  }

  /** Runs a task in the worker; the caller (the job queue) makes sure only one runs at a time. */
  async run(kind: string, params: unknown, ctx: JobContext): Promise<unknown> {
    await this.ready;
    if (this.closed) throw new Error("The model worker is shut down");
    const id = this.nextId++;
    const cancel = new SharedArrayBuffer(4);
    const flag = new Int32Array(cancel);
    const onAbort = () => Atomics.store(flag, 0, 1);
    if (ctx.signal.aborted) throw new JobCancelledError();
    ctx.signal.addEventListener("abort", onAbort, { once: true });
    try {
      return await new Promise((resolve, reject) => {
        this.pending.set(id, { resolve, reject, ctx });
        const msg: ToWorker = { id, kind, params, cancel };
        this.worker.postMessage(msg);
      });
    } finally {
      ctx.signal.removeEventListener("abort", onAbort);
      this.pending.delete(id);
    }
  }

  async close(): Promise<void> {
    this.closed = true;
    await this.worker.terminate();
  }

  private onTaskMessage(msg: Exclude<FromWorker, { type: "ready" | "fatal" }>): void {
    const p = this.pending.get(msg.id);
    if (!p) return;
    if (msg.type === "progress") p.ctx.progress({ done: msg.done, total: msg.total });
    else if (msg.type === "result") p.resolve(msg.value);
    else p.reject(msg.cancelled ? new JobCancelledError() : new Error(msg.message));
  }

  private failAll(err: Error): void {
    for (const p of this.pending.values()) p.reject(this.closed ? new JobCancelledError() : err);
    this.pending.clear();
  }
}
