/** Public API: activation patching (exact and straightforward) and attribution patching. */
export * from "./activation-patching.ts";
export * from "./attribution-compare.ts";
export type { AttributionMetric } from "./attribution-metric.ts";
export * from "./attribution-patching.ts";
export * from "./feature-patching.ts";
export * from "./pairs.ts";
export { patchResult } from "./result.ts";
export * from "./result-format.ts";
export type { PatchSweepOptions } from "./sweep.ts";
export * from "./targets.ts";
export * from "./types.ts";
