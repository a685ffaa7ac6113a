/** Messages between the HTTP thread (model-host.ts) and the model worker (model-worker.ts). */
import type { KernelName } from "../tensor/kernels.ts";
import type { ModelConfig } from "../weights/config.ts";

export interface ModelLoadSpec {
  model: string;
  backend: KernelName;
  process: boolean;
  offline?: boolean;
}

export interface WorkerSetup {
  load: ModelLoadSpec;
  /** Neuron index directory for neuron pages (opened on first use). */
  neuronIndex?: string;
  /** Transcoder set (`serve --transcoders`) for the graph task: loaded and checked against the model at start-up. */
  transcoders?: string;
  /** An SAELens SAE directory (`serve --sae`): loaded and checked against the model at start-up. */
  sae?: string;
  /** A feature index of that SAE (`index --sae`) for feature pages and search (opened on first use). */
  featureIndex?: string;
  /** A transcoder feature index of `transcoders` (`index --transcoders`) for their feature pages (opened on first use). */
  transcoderIndex?: string;
}

export interface WorkerInfo {
  cfg: ModelConfig;
  /** The loaded checkpoint's directory (its tokenizer files, for request checks on the HTTP thread). */
  dir: string;
  tasks: string[];
  /** The SAE given to `serve --sae`: its hook and number of features. */
  sae?: { hook: string; dSae: number };
  /** The transcoder set given to `serve --transcoders`: its feature input hook and each layer's width. */
  transcoders?: { featureInputHook: string; layers: { layer: number; dTranscoder: number }[] };
}

/** `cancel` is a shared Int32Array(1): the host sets it to 1, the task sees it at its next progress call. */
export interface ToWorker {
  id: number;
  kind: string;
  params: unknown;
  cancel: SharedArrayBuffer;
}

export type FromWorker =
  | { type: "ready"; info: WorkerInfo }
  /** `transcoders`: the model loaded but the transcoder set could not be loaded or does not fit it. */
  | { type: "fatal"; message: string; transcoders?: boolean }
  | { type: "progress"; id: number; done: number; total: number }
  | { type: "result"; id: number; value: unknown }
  | { type: "error"; id: number; message: string; cancelled: boolean };
