/** Public API: studies that run a whole analysis and write a report. */
export * from "./contractions/run-study.ts";
export * from "./contractions/write-study.ts";
