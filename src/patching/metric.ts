/**
 * The patching metric, read from what a run produced at each prompt's final position: either the
 * output of ln_final (fast path: then only the needed W_U columns) or full logits (straightforward path).
 */
import { batchMean, rowLogitDiff, tokensPerPrompt } from "../analysis/answer-metrics.ts";
import type { HookedTransformer } from "../model/hooked-transformer.ts";
import { unembedRows } from "../model/partial-runs.ts";
import type { PatchAnswers, PatchMetric } from "./types.ts";

/** What the metric reads of one prompt's final position: logits of its tokens, or all logits. */
export type Readout = Float64Array | Float32Array;

export class MetricReader {
  /** Per prompt, the vocabulary ids whose logits the metric reads (null: all logits). */
  readonly tokens: (readonly number[])[] | null;
  /** Per prompt, the W_U columns of `tokens`, [k, d_model], and their b_U. */
  private readonly columns: { w: Float64Array; b: Float64Array }[] | null;

  constructor(
    private readonly model: HookedTransformer,
    readonly metric: PatchMetric,
    answers: PatchAnswers | undefined,
    readonly nPrompts: number,
  ) {
    const V = model.cfg.dVocab;
    if (metric.kind === "final_logits") {
      this.tokens = null;
    } else if (metric.kind === "answer_logits" && metric.tokens) {
      if (metric.tokens.length !== nPrompts)
        throw new Error(
          `metric.tokens has ${metric.tokens.length} lists for ${nPrompts} prompts: give one per prompt`,
        );
      this.tokens = metric.tokens.map((t) => [...t]);
    } else {
      if (!answers)
        throw new Error(
          "The logit-difference metric needs answer and wrong tokens: pass answers { answer, wrong }",
        );
      const a = tokensPerPrompt(answers.answer, nPrompts, V, "answer");
      const w = tokensPerPrompt(answers.wrong, nPrompts, V, "wrong");
      this.tokens = a.map((t, i) => [t, w[i]]);
    }
    this.columns = this.tokens ? this.tokens.map((toks) => this.gatherColumns(toks)) : null;
  }

  private gatherColumns(toks: readonly number[]): { w: Float64Array; b: Float64Array } {
    const { dModel: D, dVocab: V } = this.model.cfg;
    const WU = this.model.weights.W_U.data; // [D, V]
    const bU = this.model.weights.b_U.data;
    const w = new Float64Array(toks.length * D);
    toks.forEach((t, i) => {
      for (let d = 0; d < D; d++) w[i * D + d] = WU[d * V + t];
    });
    return { w, b: Float64Array.from(toks, (t) => bU[t]) };
  }

  /**
   * Readouts of `rows` final-position rows of ln_final's output ([rows, d_model], the
   * `ln_final.hook_normalized` activation) of prompt `prompt`: only the answer columns of the
   * unembedding are applied (all of it for `final_logits`).
   */
  fromNormalized(prompt: number, y: Float32Array, rows: number): Readout[] {
    const D = this.model.cfg.dModel;
    const out: Readout[] = [];
    if (!this.columns) {
      const logits = unembedRows(this.model, y, rows);
      const V = this.model.cfg.dVocab;
      for (let r = 0; r < rows; r++) out.push(logits.slice(r * V, (r + 1) * V));
      return out;
    }
    const { w, b } = this.columns[prompt];
    const k = b.length;
    for (let r = 0; r < rows; r++) {
      const vals = new Float64Array(k);
      for (let i = 0; i < k; i++) {
        let s = b[i];
        for (let d = 0; d < D; d++) s += y[r * D + d] * w[i * D + d];
        vals[i] = s;
      }
      out.push(vals);
    }
    return out;
  }

  /** Readout of prompt `prompt` from a full logits row [d_vocab]. */
  fromLogits(prompt: number, logits: Float32Array): Readout {
    if (!this.tokens) return logits.slice();
    return Float64Array.from(this.tokens[prompt], (t) => logits[t]);
  }

  /** The metric over a set of prompts' readouts (the batch value; a one-element list gives a per-prompt value). */
  value(readouts: readonly Readout[]): number {
    const m = this.metric;
    if (m.kind === "final_logits") return m.fn(readouts as Float32Array[]);
    if (m.kind === "answer_logits") return m.fn(readouts as Float64Array[]);
    // A logit-difference readout holds the [answer, wrong] logits.
    return batchMean(readouts.map((r) => rowLogitDiff(r, 0, 1)));
  }
}
