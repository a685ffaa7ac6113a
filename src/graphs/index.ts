/** Public API: attribution graphs over transcoder features (circuit-tracer semantics) — edges, data, pruning, scores, files, checks. */
export * from "./attribute-graph.ts";
export * from "./attribution-graph.ts";
export * from "./front-end-check.ts";
export * from "./graph-check.ts";
export * from "./graph-files.ts";
export * from "./logit-targets.ts";
export * from "./prompt-graph.ts";
export * from "./prune.ts";
export * from "./replacement-run.ts";
export * from "./transcoder-set.ts";
