import { batchMean, rowLogitDiff, type TokenPerPrompt, tokensPerPrompt } from "../analysis/answer-metrics.ts";
import { logSoftmax } from "../model/sampling.ts";
import type { Tensor } from "../tensor/tensor.ts";

/**
 * d metric / d logits at each prompt's final real position. Sparse when the metric reads only a few
 * vocabulary entries (a logit difference): the backward pass then touches only those W_U columns
 * instead of the whole [d_model, d_vocab] unembedding.
 */
export type LogitGradient =
  | { kind: "sparse"; entries: readonly { batch: number; token: number; weight: number }[] }
  | { kind: "dense"; grad: Float32Array /* [batch, d_vocab] */ };

/**
 * A scalar function of the final-position logits, with its gradient (the seed of the backward pass).
 * `finalLogits` is [batch, d_vocab]: each prompt's logits at its last real position.
 */
export interface LogitMetric {
  readonly name: string;
  value(finalLogits: Tensor): number;
  gradient(finalLogits: Tensor): LogitGradient;
}

/** Per-prompt logit(answer) - logit(wrong) at the final position. */
export function logitDiffs(finalLogits: Tensor, answer: TokenPerPrompt, wrong: TokenPerPrompt): number[] {
  const [B, V] = checkBatch(finalLogits);
  const a = tokensPerPrompt(answer, B, V, "answer");
  const w = tokensPerPrompt(wrong, B, V, "wrong");
  return a.map((t, b) => rowLogitDiff(finalLogits.data.subarray(b * V, (b + 1) * V), t, w[b]));
}

function checkBatch(finalLogits: Tensor): [number, number] {
  if (finalLogits.ndim !== 2) {
    throw new Error(
      `A logit metric reads final-position logits [batch, d_vocab], got [${finalLogits.shape.join(", ")}]`,
    );
  }
  return [finalLogits.shape[0], finalLogits.shape[1]];
}

/** Mean over the batch of logit(answer) - logit(wrong) at the final position (TransformerLens' usual metric). */
export function logitDiffMetric(answer: TokenPerPrompt, wrong: TokenPerPrompt): LogitMetric {
  return affineLogitDiff(answer, wrong, 0, 1, "logit_diff");
}

/**
 * `(logit diff - corrupted) / (clean - corrupted)`: 0 on the corrupted run, 1 on the clean run. The
 * activation-patching convention, so attribution estimates read on the same scale.
 */
export function normalizedLogitDiffMetric(
  answer: TokenPerPrompt,
  wrong: TokenPerPrompt,
  clean: number,
  corrupted: number,
): LogitMetric {
  const span = clean - corrupted;
  if (!Number.isFinite(span) || Math.abs(span) < 1e-6) {
    throw new Error(
      `Clean and corrupted logit differences are (nearly) equal (${clean} vs ${corrupted}): the normalised ` +
        "metric is undefined. Choose prompts whose answers differ, or use the raw logit-difference metric.",
    );
  }
  return affineLogitDiff(answer, wrong, corrupted, span, "normalized_logit_diff");
}

function affineLogitDiff(
  answer: TokenPerPrompt,
  wrong: TokenPerPrompt,
  offset: number,
  span: number,
  name: string,
): LogitMetric {
  return {
    name,
    value(finalLogits) {
      return (batchMean(logitDiffs(finalLogits, answer, wrong)) - offset) / span;
    },
    gradient(finalLogits) {
      const [B, V] = checkBatch(finalLogits);
      const a = tokensPerPrompt(answer, B, V, "answer");
      const wr = tokensPerPrompt(wrong, B, V, "wrong");
      const w = 1 / (B * span);
      const entries: { batch: number; token: number; weight: number }[] = [];
      for (let b = 0; b < B; b++) {
        entries.push({ batch: b, token: a[b], weight: w });
        entries.push({ batch: b, token: wr[b], weight: -w });
      }
      return { kind: "sparse", entries };
    },
  };
}

/** Mean over the batch of log p(answer) at the final position: a metric with a dense gradient. */
export function answerLogProbMetric(answer: TokenPerPrompt): LogitMetric {
  return {
    name: "answer_logprob",
    value(finalLogits) {
      const [B, V] = checkBatch(finalLogits);
      const a = tokensPerPrompt(answer, B, V, "answer");
      let total = 0;
      for (let b = 0; b < B; b++) {
        const row = finalLogits.data.subarray(b * V, (b + 1) * V);
        total += logSoftmax(row)[a[b]];
      }
      return total / B;
    },
    gradient(finalLogits) {
      const [B, V] = checkBatch(finalLogits);
      const a = tokensPerPrompt(answer, B, V, "answer");
      const grad = new Float32Array(B * V);
      for (let b = 0; b < B; b++) {
        const lp = logSoftmax(finalLogits.data.subarray(b * V, (b + 1) * V));
        // d log p_a / d logit_i = [i == a] - p_i
        for (let i = 0; i < V; i++) grad[b * V + i] = -Math.exp(lp[i]) / B;
        grad[b * V + a[b]] += 1 / B;
      }
      return { kind: "dense", grad };
    },
  };
}
