/** Public API: studies as specs, the shared pipeline that runs them, and writing their reports. */
export { contractionsSpec } from "./contractions/spec.ts";
export { customSpec } from "./custom.ts";
export { buildPromptSet, type RunStudyOptions, runStudy, STAGES } from "./pipeline.ts";
export { pronounsSpec } from "./pronouns/spec.ts";
export type { StudyResults } from "./results.ts";
export * from "./spec.ts";
export type { Stage } from "./stage.ts";
export { type WrittenStudy, writeStudy } from "./write-study.ts";
