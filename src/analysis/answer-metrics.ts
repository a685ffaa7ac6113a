/**
 * Answer-vs-wrong metrics at each prompt's final real position: the one home of the logit difference, of
 * checking "one token, or one per prompt", and of the patching normalisation.
 */
import type { Tensor } from "../tensor/tensor.ts";
import type { Gpt2Tokenizer } from "../tokenizer/tokenizer.ts";
import { type AnswerReport, answerReport } from "./predictions.ts";

/** One token for every prompt, or one per prompt. */
export type TokenPerPrompt = number | readonly number[];

/**
 * The token of each of `nPrompts` prompts, checked: a list must have one per prompt, and every id must be
 * in the vocabulary. `what` names the tokens in errors ("answer", "--wrong", ...).
 */
export function tokensPerPrompt(
  tokens: TokenPerPrompt,
  nPrompts: number,
  dVocab: number,
  what: string,
): number[] {
  const list = typeof tokens === "number" ? new Array<number>(nPrompts).fill(tokens) : [...tokens];
  if (list.length !== nPrompts)
    throw new Error(
      `Got ${list.length} ${what} tokens for ${nPrompts} prompts: give one token per prompt, or a single one for all`,
    );
  for (const t of list)
    if (!Number.isInteger(t) || t < 0 || t >= dVocab)
      throw new Error(`${what} token ${t} is not a vocabulary id: use an id in [0, ${dVocab})`);
  return list;
}

/**
 * Why the answer and wrong tokens cannot be compared — the same token, so every logit difference is 0 and
 * the patching normalisation divides 0 by 0 — with the fix; null when they differ (for every prompt).
 */
export function sameAnswerProblem(
  answer: TokenPerPrompt,
  wrong: TokenPerPrompt,
): { message: string; fix: string } | null {
  const answers = typeof answer === "number" ? [answer] : answer;
  const wrongs = typeof wrong === "number" ? [wrong] : wrong;
  const n = Math.max(answers.length, wrongs.length);
  for (let i = 0; i < n; i++) {
    const a = answers[answers.length === 1 ? 0 : i];
    if (a !== undefined && a === wrongs[wrongs.length === 1 ? 0 : i])
      return {
        message: `The answer and the wrong token are the same token (id ${a}${n > 1 ? `, prompt ${i}` : ""}): the logit difference is 0 in every run, so there is nothing to measure.`,
        fix: 'Give as the wrong token the one the corrupted prompt calls for, different from the answer (e.g. answer "\'re", wrong " are").',
      };
  }
  return null;
}

/** logit[answer] - logit[wrong] in one row of logits. */
export function rowLogitDiff(row: ArrayLike<number>, answer: number, wrong: number): number {
  return row[answer] - row[wrong];
}

/** Mean of per-prompt values: the batch metric (TransformerLens averages the logit difference over prompts). */
export function batchMean(perPrompt: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < perPrompt.length; i++) s += perPrompt[i];
  return s / perPrompt.length;
}

/**
 * Whether clean and corrupted differ enough to divide by their gap. They can be equal on a batch whose pairs
 * cancel (one pair the other's swap): the fraction restored is then undefined, not NaN or ±Infinity to print.
 */
export function hasGap(clean: number, corrupted: number): boolean {
  return Math.abs(clean - corrupted) > 1e-6;
}

/** (patched - corrupted) / (clean - corrupted): 1 = the clean behaviour fully restored, 0 = no effect. */
export function normalise(patched: number, clean: number, corrupted: number): number {
  return (patched - corrupted) / (clean - corrupted);
}

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
  answers: TokenPerPrompt,
  wrongs: TokenPerPrompt,
): LogitDiffResult {
  const V = logits.shape[logits.ndim - 1];
  const a = tokensPerPrompt(answers, lengths.length, V, "answer");
  const w = tokensPerPrompt(wrongs, lengths.length, V, "wrong");
  const perPrompt = lengths.map((_, b) => rowLogitDiff(finalLogitsRow(logits, lengths, b), a[b], w[b]));
  return { perPrompt, mean: batchMean(perPrompt) };
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
