/** Public API: analyses of a cached run — logit attribution, residual decomposition, circuits, statistics. */
export * from "./answer-metrics.ts";
export * from "./attribute.ts";
export * from "./circuits.ts";
export * from "./correlation.ts";
export * from "./factored-matrix.ts";
export * from "./feature-attribution.ts";
export * from "./head-detector.ts";
export * from "./head-patterns.ts";
export * from "./logit-attribution.ts";
export * from "./positions.ts";
export * from "./predictions.ts";
export * from "./residual-stack.ts";
export * from "./stats.ts";
