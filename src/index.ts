/**
 * circuitscope's public API. The root exports everything public; `circuitscope/analysis`,
 * `circuitscope/patching`, `circuitscope/circuits`, `circuitscope/viz` and `circuitscope/studies` export one
 * area each.
 * Modules not reachable from here are internal and may change without notice.
 */
export * from "./analysis/index.ts";
export * from "./circuits/index.ts";
export type { LogitMetric } from "./gradients/logit-metric.ts";
export * from "./graphs/index.ts";
export type { HubOptions } from "./hub/settings.ts";
export { ActivationCache } from "./model/activation-cache.ts";
export type { HookModel, LayoutSource } from "./model/hook-points.ts";
export { allHookNames, blockHookName } from "./model/hook-points.ts";
export * from "./model/hooked-transformer.ts";
export * from "./model/hooks.ts";
export type { ModelInput, PaddedBatch } from "./model/input.ts";
export type { ProcessingOptions } from "./model/processing.ts";
export type { NeuronIndex } from "./neurons/neuron-index.ts";
export * from "./patching/index.ts";
export * from "./studies/index.ts";
export type { Activation } from "./tensor/activations.ts";
export type { KernelName, Kernels, LinearOp } from "./tensor/kernels.ts";
export type { NestedNumbers } from "./tensor/tensor.ts";
export { Tensor } from "./tensor/tensor.ts";
export type { TokenBatch, TokenizeOptions, Tokenizer } from "./tokenizer/tokenizer.ts";
export { packageInfo } from "./util/package-info.ts";
export * from "./viz/index.ts";
export type { ModelWeights } from "./weights/canonical-weights.ts";
export type {
  Checkpoint,
  LoadCheckpointOptions,
  OpenCheckpoint,
  RawTensor,
  TensorSource,
} from "./weights/checkpoint.ts";
export { loadCheckpoint, makeRandomCheckpoint, openCheckpoint } from "./weights/checkpoint.ts";
export type { Architecture, GPT2Config, ModelConfig, RotaryConfig } from "./weights/config.ts";
export type { RandomCheckpointOptions } from "./weights/random-checkpoint.ts";
