/**
 * The patching metric as attribution patching needs it: its value and its gradient w.r.t. each prompt's
 * final-position logits (the seed of the backward pass), for the batch metric and for each prompt's own.
 */
import type { LogitGradient, LogitMetric } from "../gradients/logit-metric.ts";
import type { HookedTransformer } from "../model/hooked-transformer.ts";
import { Tensor } from "../tensor/tensor.ts";
import { MetricReader, type Readout } from "./metric.ts";
import type { PatchAnswers, PatchMetric } from "./types.ts";

/** A patching metric, or any logit metric that states its own gradient. */
export type AttributionMetric = PatchMetric | LogitMetric;

export function isLogitMetric(m: AttributionMetric): m is LogitMetric {
  return typeof (m as LogitMetric).gradient === "function";
}

/** Per prompt: the final-position logits [d_vocab] of that prompt's run. */
export interface MetricSeeds {
  batchValue(finalLogits: readonly Float32Array[]): number;
  promptValue(prompt: number, finalLogits: Float32Array): number;
  /** Seed for prompt `prompt`'s backward pass (batch index 0) of the batch metric. */
  batchSeeds(finalLogits: readonly Float32Array[]): LogitGradient[];
  /** Seed of prompt `prompt`'s own metric. */
  promptSeed(prompt: number, finalLogits: Float32Array): LogitGradient;
}

export function metricSeeds(
  model: HookedTransformer,
  metric: AttributionMetric | undefined,
  answers: PatchAnswers | undefined,
  nPrompts: number,
): MetricSeeds {
  const m = metric ?? { kind: "logit_diff" as const };
  return isLogitMetric(m)
    ? logitMetricSeeds(m, model.cfg.dVocab)
    : patchMetricSeeds(model, m, answers, nPrompts);
}

function stack(rows: readonly Float32Array[], V: number): Tensor {
  const out = new Float32Array(rows.length * V);
  for (let b = 0; b < rows.length; b++) out.set(rows[b], b * V);
  return new Tensor(out, [rows.length, V]);
}

/** The [batch]-wide gradient split into one single-prompt seed per prompt. */
function splitSeed(g: LogitGradient, nPrompts: number, V: number): LogitGradient[] {
  if (g.kind === "dense")
    return Array.from({ length: nPrompts }, (_, b) => ({
      kind: "dense" as const,
      grad: g.grad.slice(b * V, (b + 1) * V),
    }));
  return Array.from({ length: nPrompts }, (_, b) => ({
    kind: "sparse" as const,
    entries: g.entries.filter((e) => e.batch === b).map((e) => ({ ...e, batch: 0 })),
  }));
}

function logitMetricSeeds(m: LogitMetric, V: number): MetricSeeds {
  return {
    batchValue: (rows) => m.value(stack(rows, V)),
    promptValue: (_, row) => m.value(stack([row], V)),
    batchSeeds: (rows) => splitSeed(m.gradient(stack(rows, V)), rows.length, V),
    promptSeed: (_, row) => m.gradient(stack([row], V)),
  };
}

function patchMetricSeeds(
  model: HookedTransformer,
  metric: PatchMetric,
  answers: PatchAnswers | undefined,
  nPrompts: number,
): MetricSeeds {
  if (metric.kind === "final_logits") {
    throw new Error(
      "Attribution patching needs the metric's gradient, and a function of all final logits has none we can " +
        "take cheaply. Use the logit-difference or an answer_logits metric, or pass a LogitMetric with gradient().",
    );
  }
  const reader = new MetricReader(model, metric, answers, nPrompts);
  const tokens = reader.tokens!; // non-null: not a final_logits metric
  const readouts = (rows: readonly Float32Array[]) => rows.map((r, b) => reader.fromLogits(b, r));
  // d value / d readout entries: exact for the logit difference, central differences of the user's
  // function (in float64, where a relative step of 1e-5 leaves ~1e-10 error) otherwise.
  const readoutGrads = (rs: Readout[]): Float64Array[] => {
    if (metric.kind === "logit_diff") return rs.map(() => Float64Array.of(1 / rs.length, -1 / rs.length));
    const copies = rs.map((r) => Float64Array.from(r));
    return copies.map((r) =>
      r.map((x, i) => {
        const h = 1e-5 * Math.max(1, Math.abs(x));
        r[i] = x + h;
        const up = reader.value(copies);
        r[i] = x - h;
        const down = reader.value(copies);
        r[i] = x;
        return (up - down) / (2 * h);
      }),
    );
  };
  const toSeed = (prompt: number, g: Float64Array): LogitGradient => ({
    kind: "sparse",
    entries: tokens[prompt].map((token, i) => ({ batch: 0, token, weight: g[i] })),
  });
  return {
    batchValue: (rows) => reader.value(readouts(rows)),
    promptValue: (b, row) => reader.value([reader.fromLogits(b, row)]),
    batchSeeds: (rows) => readoutGrads(readouts(rows)).map((g, b) => toSeed(b, g)),
    promptSeed: (b, row) => toSeed(b, readoutGrads([reader.fromLogits(b, row)])[0]),
  };
}
