/** Public API: the hooked model — loading, running with hooks and caches, hook names, generation. */
export { ActivationCache } from "./activation-cache.ts";
export { headName, mlpName } from "./component-names.ts";
export type { HookModel, LayoutSource, ParsedHookName } from "./hook-points.ts";
export { actName, allHookNames, BLOCK_HOOKS, blockHookName, parseHookName } from "./hook-points.ts";
export * from "./hooked-transformer.ts";
export * from "./hooks.ts";
export type { ModelInput, PaddedBatch } from "./input.ts";
export type { ProcessingOptions } from "./processing.ts";
