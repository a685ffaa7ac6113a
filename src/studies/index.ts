/** Public API: studies as specs, the shared pipeline that runs them, and writing their reports. */

export type { StudyContext } from "./context.ts";
export { contractionsSpec } from "./contractions/spec.ts";
export { customSpec } from "./custom.ts";
export { buildPromptSet, type RunStudyOptions, runStudy, STAGES } from "./pipeline.ts";
export { groupRandom, type PromptPair, type PromptSet } from "./prompts.ts";
export { pronounsSpec } from "./pronouns/spec.ts";
export type {
  Comparison,
  Finding,
  FocusResult,
  GroupResult,
  PromptReport,
  StudyMeta,
  StudyResults,
} from "./results.ts";
export * from "./spec.ts";
export type { Stage, StageSlice, StudySection } from "./stage.ts";
export { type WrittenStudy, writeStudy } from "./write-study.ts";
