/** Public API: circuits from edges — the graph, edge-masked evaluation, EAP / EAP-IG / exact scores, selection. */
export * from "./circuit-task.ts";
export * from "./find-circuit.ts";
export * from "./graph.ts";
export * from "./select.ts";
export * from "./summary.ts";
