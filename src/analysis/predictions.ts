import { logSoftmax } from "../model/sampling.ts";
import type { Gpt2Tokenizer } from "../tokenizer/tokenizer.ts";

export interface TokenPrediction {
  token: number;
  str: string;
  logit: number;
  prob: number;
}

export interface AnswerReport extends TokenPrediction {
  /** 0-based rank among all tokens by logit (0 = top prediction). */
  rank: number;
}

/** Top-k next tokens of one logits row [d_vocab] (TransformerLens' `test_prompt` table). */
export function topPredictions(row: Float32Array, k: number, tokenizer: Gpt2Tokenizer): TokenPrediction[] {
  if (!(k >= 1)) throw new Error(`top-k must be >= 1, got ${k}`);
  const lp = logSoftmax(row);
  // Partial selection: keep a small sorted list instead of sorting 50k entries.
  const best: number[] = [];
  for (let i = 0; i < row.length; i++) {
    if (best.length === k && row[i] <= row[best[k - 1]]) continue;
    let j = best.length < k ? best.length : k - 1;
    if (best.length < k) best.push(i);
    while (j > 0 && row[best[j - 1]] < row[i]) {
      best[j] = best[j - 1];
      j--;
    }
    best[j] = i;
  }
  return best.map((t) => ({
    token: t,
    str: tokenizer.toStrTokens([t])[0],
    logit: row[t],
    prob: Math.exp(lp[t]),
  }));
}

export function answerReport(row: Float32Array, token: number, tokenizer: Gpt2Tokenizer): AnswerReport {
  if (token < 0 || token >= row.length) throw new Error(`Answer token ${token} is outside the vocabulary`);
  const lp = logSoftmax(row);
  const logit = row[token];
  let rank = 0;
  for (let i = 0; i < row.length; i++) if (row[i] > logit) rank++;
  return { token, str: tokenizer.toStrTokens([token])[0], logit, prob: Math.exp(lp[token]), rank };
}
