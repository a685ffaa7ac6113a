/** Public API: attribution graphs over transcoder features (circuit-tracer semantics) — data, pruning, scores, files. */
export * from "./attribution-graph.ts";
export * from "./front-end-check.ts";
export * from "./graph-files.ts";
export * from "./logit-targets.ts";
export * from "./prune.ts";
export * from "./replacement-run.ts";
export * from "./transcoder-set.ts";
