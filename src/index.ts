/**
 * circuitscope's public API. The root exports everything public; `circuitscope/analysis`,
 * `circuitscope/patching`, `circuitscope/viz` and `circuitscope/studies` export one area each.
 * Modules not reachable from here are internal and may change without notice.
 */
export * from "./analysis/index.ts";
export { ActivationCache } from "./model/activation-cache.ts";
export * from "./model/hooked-transformer.ts";
export * from "./model/hooks.ts";
export * from "./patching/index.ts";
export * from "./studies/index.ts";
export { Tensor } from "./tensor/tensor.ts";
export { packageInfo } from "./util/package-info.ts";
export * from "./viz/index.ts";
