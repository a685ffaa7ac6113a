/**
 * circuitscope's public API. The root exports everything public; `circuitscope/model`, `circuitscope/tensor`,
 * `circuitscope/analysis`, `circuitscope/gradients`, `circuitscope/patching`, `circuitscope/circuits`,
 * `circuitscope/neurons`, `circuitscope/viz` and `circuitscope/studies` export one area each.
 * Modules not reachable from here are internal and may change without notice.
 */
export * from "./analysis/index.ts";
export * from "./circuits/index.ts";
export * from "./gradients/index.ts";
export * from "./graphs/index.ts";
export type { HubOptions } from "./hub/settings.ts";
export * from "./model/index.ts";
export * from "./neurons/index.ts";
export * from "./patching/index.ts";
export * from "./sae/index.ts";
export * from "./studies/index.ts";
export * from "./tensor/index.ts";
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
export type { Architecture, ModelConfig, ModelShape, RotaryConfig } from "./weights/config.ts";
export type { RandomCheckpointOptions } from "./weights/random-checkpoint.ts";
