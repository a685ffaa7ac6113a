/**
 * The model worker: owns the one loaded model and runs tasks one at a time, off the HTTP thread, so the
 * server answers status and progress requests while a long patching run is in progress.
 */
import { type MessagePort, parentPort, workerData } from "node:worker_threads";
import type { TranscoderSet } from "../graphs/transcoder-set.ts";
import type { HookedTransformer } from "../model/hooked-transformer.ts";
import type { NeuronIndex } from "../neurons/neuron-index.ts";
import type { ModelLoadSpec, ToWorker, WorkerInfo, WorkerSetup } from "./model-protocol.ts";
import {
  attentionTask,
  attributionTask,
  circuitTask,
  graphTask,
  neuronTask,
  patchingTask,
  predictTask,
  type TaskContext,
} from "./tasks.ts";

type Task = (model: HookedTransformer, params: never, ctx: TaskContext) => unknown;

const TASKS: Record<string, Task> = {
  predict: predictTask,
  attention: attentionTask,
  attribution: attributionTask,
  patching: patchingTask,
  circuit: circuitTask,
  neuron: neuronTask,
  graph: graphTask,
};

/** Thrown when a task sees the cancel flag; reported to the host as a cancellation, not a failure. */
class Cancelled extends Error {}

const port = parentPort;
if (!port) throw new Error("model-worker.ts must run in a worker thread (see model-host.ts)");

async function load(spec: ModelLoadSpec): Promise<HookedTransformer> {
  const { HookedTransformer } = await import("../model/hooked-transformer.ts");
  return HookedTransformer.fromPretrained(spec.model, {
    backend: spec.backend,
    processing: spec.process ? undefined : false,
    hub: { offline: spec.offline, progress: false },
  });
}

const setup = workerData as WorkerSetup;
let index: NeuronIndex | null | undefined;
async function openIndex(): Promise<void> {
  if (index !== undefined) return;
  if (!setup.neuronIndex) index = null;
  else index = (await import("../neurons/neuron-index.ts")).NeuronIndex.open(setup.neuronIndex);
}

/** The set given to `serve --transcoders`, checked against the model (layers, d_model, hooks) before serving. */
async function loadTranscoders(model: HookedTransformer, dir: string): Promise<TranscoderSet> {
  const { loadTranscoderSet } = await import("../graphs/transcoder-set.ts");
  const { checkTranscoderSet } = await import("../graphs/replacement-run.ts");
  const { checkGraphHooks } = await import("../graphs/attribute-graph.ts");
  const set = await loadTranscoderSet(dir, { offline: setup.load.offline });
  checkTranscoderSet(model, set);
  checkGraphHooks(model, set);
  return set;
}

let model: HookedTransformer | undefined;
let transcoders: TranscoderSet | null = null;
let loaded = false;
try {
  model = await load(setup.load);
  if (setup.transcoders !== undefined) transcoders = await loadTranscoders(model, setup.transcoders);
  loaded = true;
} catch (err) {
  port.postMessage({ type: "fatal", message: (err as Error).message, transcoders: model !== undefined });
}
if (loaded && model) serve(port, model);

function serve(port: MessagePort, model: HookedTransformer): void {
  // Without transcoders there is no graph task to offer.
  const tasks = Object.keys(TASKS).filter((k) => k !== "graph" || transcoders !== null);
  const info: WorkerInfo = { cfg: model.cfg, dir: model.source, tasks };
  port.postMessage({ type: "ready", info });
  port.on("message", async (msg: ToWorker) => {
    const flag = new Int32Array(msg.cancel);
    const abort = new AbortController();
    const ctx: TaskContext = {
      signal: abort.signal,
      progress: (done, total) => {
        if (Atomics.load(flag, 0) !== 0) abort.abort();
        else port.postMessage({ type: "progress", id: msg.id, done, total });
      },
      neuronIndex: () => index ?? null,
      transcoders: () => transcoders,
    };
    try {
      const task = tasks.includes(msg.kind) ? TASKS[msg.kind] : undefined;
      if (!task) throw new Error(`Unknown task "${msg.kind}"`);
      if (msg.kind === "neuron") await openIndex();
      if (Atomics.load(flag, 0) !== 0) throw new Cancelled();
      const value = await task(model, msg.params as never, ctx);
      port.postMessage({ type: "result", id: msg.id, value });
    } catch (err) {
      const cancelled = err instanceof Cancelled || Atomics.load(flag, 0) !== 0;
      port.postMessage({ type: "error", id: msg.id, message: (err as Error).message, cancelled });
    }
  });
}
