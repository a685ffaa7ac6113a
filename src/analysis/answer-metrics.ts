/** Answer-vs-wrong metrics at each prompt's final real position. */
import type { Tensor } from "../tensor/tensor.ts";
import type { Gpt2Tokenizer } from "../tokenizer/tokenizer.ts";
import { type AnswerReport, answerReport } from "./predictions.ts";

export interface LogitDiffResult {
  /** logit[answer] - logit[wrong] per prompt. */
  perPrompt: number[];
  mean: number;
}

/**
 * The final-position logits row of prompt b: from [batch, pos, V] logits (at `lengths[b] - 1`) or from
 * `logits: "last"` output [batch, 1, V].
 */
export function finalLogitsRow(logits: Tensor, lengths: readonly number[], b: number): Float32Array {
  const [B, P, V] = logits.shape;
  if (logits.ndim !== 3 || B !== lengths.length)
    throw new Error(`Expected logits [${lengths.length}, pos, d_vocab], got [${logits.shape.join(", ")}]`);
  const p = P === 1 ? 0 : lengths[b] - 1;
  return logits.data.subarray((b * P + p) * V, (b * P + p + 1) * V);
}

/** Logit difference between answer and wrong tokens (one per prompt, or one for all) at the final position. */
export function logitDiff(
  logits: Tensor,
  lengths: readonly number[],
  answers: number | readonly number[],
  wrongs: number | readonly number[],
): LogitDiffResult {
  const perPrompt = lengths.map((_, b) => {
    const row = finalLogitsRow(logits, lengths, b);
    const a = typeof answers === "number" ? answers : answers[b];
    const w = typeof wrongs === "number" ? wrongs : wrongs[b];
    return row[a] - row[w];
  });
  return { perPrompt, mean: perPrompt.reduce((s, x) => s + x, 0) / perPrompt.length };
}

/** Rank, logit and probability of the answer and the wrong token for each prompt. */
export function answerWrongReports(
  logits: Tensor,
  lengths: readonly number[],
  answer: number,
  wrong: number,
  tokenizer: Gpt2Tokenizer,
): { answer: AnswerReport; wrong: AnswerReport }[] {
  return lengths.map((_, b) => {
    const row = finalLogitsRow(logits, lengths, b);
    return { answer: answerReport(row, answer, tokenizer), wrong: answerReport(row, wrong, tokenizer) };
  });
}
