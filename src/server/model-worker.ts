/**
 * The model worker: owns the one loaded model and runs tasks one at a time, off the HTTP thread, so the
 * server answers status and progress requests while a long patching run is in progress.
 */
import { parentPort, workerData } from "node:worker_threads";
import type { TranscoderSet } from "../graphs/transcoder-set.ts";
import type { HookedTransformer } from "../model/hooked-transformer.ts";
import type { NeuronIndex } from "../neurons/neuron-index.ts";
import type { Sae } from "../sae/sae.ts";
import { displayName } from "./display-name.ts";
import type { ModelLoadSpec, ToWorker, WorkerInfo, WorkerSetup } from "./model-protocol.ts";
import {
  attentionTask,
  attributionTask,
  circuitTask,
  featureSearchTask,
  featureTask,
  graphTask,
  neuronTask,
  patchingTask,
  predictTask,
  type TaskContext,
  transcoderFeatureTask,
} from "./tasks.ts";

type Task = (model: HookedTransformer, params: never, ctx: TaskContext) => unknown;

const TASKS: Record<string, Task> = {
  predict: predictTask,
  attention: attentionTask,
  attribution: attributionTask,
  patching: patchingTask,
  circuit: circuitTask,
  neuron: neuronTask,
  feature: featureTask,
  featureSearch: featureSearchTask,
  graph: graphTask,
  transcoderFeature: transcoderFeatureTask,
};

/** Tasks that need `serve --transcoders`. */
const TRANSCODER_TASKS = ["graph", "transcoderFeature"];

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
/** An index directory, opened on the first task that needs it (`get` is null without one, or before `open`). */
function lazyIndex(dir: string | undefined) {
  let opened: NeuronIndex | null | undefined;
  return {
    async open(): Promise<void> {
      if (opened !== undefined) return;
      opened = dir ? (await import("../neurons/neuron-index.ts")).NeuronIndex.open(dir) : null;
    },
    get: (): NeuronIndex | null => opened ?? null,
  };
}
const neuronIndex = lazyIndex(setup.neuronIndex);
const featureIndex = lazyIndex(setup.featureIndex);
const transcoderIndex = lazyIndex(setup.transcoderIndex);

/** The `serve --sae` SAE, loaded for the model; a misfit is a start-up failure with the fix. */
async function loadSae(model: HookedTransformer): Promise<Sae | null> {
  if (!setup.sae) return null;
  const { loadSaeLensDir } = await import("../sae/saelens-dir.ts");
  const { checkSaeFitsModel } = await import("../sae/hook-width.ts");
  const sae = loadSaeLensDir(setup.sae, { kernels: model.kernels });
  checkSaeFitsModel(sae.cfg, model.cfg);
  return sae;
}

/** A `serve --transcoders` set that cannot be loaded or does not fit the model (the host names the flag). */
class TranscoderSetError extends Error {}

/** The set given to `serve --transcoders`, checked against the model (layers, d_model, hooks) before serving. */
async function loadTranscoders(model: HookedTransformer): Promise<TranscoderSet | null> {
  if (setup.transcoders === undefined) return null;
  const { loadTranscoderSet } = await import("../graphs/transcoder-set.ts");
  const { checkTranscoderSet } = await import("../graphs/replacement-run.ts");
  const { checkGraphHooks } = await import("../graphs/attribute-graph.ts");
  try {
    const set = await loadTranscoderSet(setup.transcoders, { offline: setup.load.offline });
    checkTranscoderSet(model, set);
    checkGraphHooks(model, set);
    return set;
  } catch (err) {
    throw new TranscoderSetError((err as Error).message);
  }
}

try {
  const model = await load(setup.load);
  const sae = await loadSae(model);
  const transcoders = await loadTranscoders(model);
  // Without transcoders there is no graph (nor transcoder feature page) to offer.
  const tasks = Object.keys(TASKS).filter((k) => !TRANSCODER_TASKS.includes(k) || transcoders !== null);
  const info: WorkerInfo = {
    cfg: model.cfg,
    dir: model.source,
    tasks,
    ...(sae ? { sae: { hook: sae.cfg.hookName, dSae: sae.cfg.dSae } } : {}),
    ...(transcoders
      ? {
          transcoders: {
            featureInputHook: transcoders.featureInputHook,
            layers: transcoders.transcoders.map((t) => ({ layer: t.layer, dTranscoder: t.dTranscoder })),
          },
        }
      : {}),
  };
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
      neuronIndex: neuronIndex.get,
      sae: () => sae,
      featureIndex: featureIndex.get,
      transcoderIndex: transcoderIndex.get,
      transcoders: () => transcoders,
      names: {
        model: displayName(setup.load.model),
        ...(setup.sae ? { sae: displayName(setup.sae) } : {}),
        ...(setup.transcoders ? { transcoders: displayName(setup.transcoders) } : {}),
        ...(setup.transcoderIndex ? { transcoderIndex: displayName(setup.transcoderIndex) } : {}),
      },
    };
    try {
      const task = tasks.includes(msg.kind) ? TASKS[msg.kind] : undefined;
      if (!task) throw new Error(`Unknown task "${msg.kind}"`);
      if (msg.kind === "neuron") await neuronIndex.open();
      if (msg.kind === "feature" || msg.kind === "featureSearch") await featureIndex.open();
      if (msg.kind === "transcoderFeature") await transcoderIndex.open();
      if (Atomics.load(flag, 0) !== 0) throw new Cancelled();
      const value = await task(model, msg.params as never, ctx);
      port.postMessage({ type: "result", id: msg.id, value });
    } catch (err) {
      const cancelled = err instanceof Cancelled || Atomics.load(flag, 0) !== 0;
      port.postMessage({ type: "error", id: msg.id, message: (err as Error).message, cancelled });
    }
  });
} catch (err) {
  port.postMessage({
    type: "fatal",
    message: (err as Error).message,
    transcoders: err instanceof TranscoderSetError,
  });
}
