/**
 * circuitscope's public API. The root exports everything public; `circuitscope/analysis`,
 * `circuitscope/patching`, `circuitscope/viz` and `circuitscope/studies` export one area each.
 * Modules not reachable from here are internal and may change without notice.
 */
export * from "./analysis/index.ts";
export { ActivationCache } from "./model/activation-cache.ts";
export { allHookNames, blockHookName } from "./model/hook-points.ts";
export * from "./model/hooked-transformer.ts";
export * from "./model/hooks.ts";
export type { ModelInput, PaddedBatch } from "./model/input.ts";
export type { ProcessingOptions } from "./model/processing.ts";
export * from "./patching/index.ts";
export * from "./studies/index.ts";
export type { KernelName, Kernels, LinearOp } from "./tensor/kernels.ts";
export { Tensor } from "./tensor/tensor.ts";
export type { TokenizeOptions, Tokenizer } from "./tokenizer/tokenizer.ts";
export { packageInfo } from "./util/package-info.ts";
export * from "./viz/index.ts";
export type { Checkpoint } from "./weights/checkpoint.ts";
export { loadCheckpoint, makeRandomCheckpoint } from "./weights/checkpoint.ts";
export type { Architecture, GPT2Config, ModelConfig } from "./weights/config.ts";
