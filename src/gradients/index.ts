/** Public API: the backward pass from a metric on the final logits to every hook (`run_with_cache(incl_bwd=True)`). */
export { type GradientRun, runWithGradients } from "./backward.ts";
export {
  answerLogProbMetric,
  type LogitGradient,
  type LogitMetric,
  logitDiffMetric,
  logitDiffs,
  normalizedLogitDiffMetric,
} from "./logit-metric.ts";
