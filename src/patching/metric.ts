/**
 * The patching metric, read from what a run produced at each prompt's final position: either the
 * output of ln_final (fast path: then only the needed W_U columns) or full logits (straightforward path).
 */
import { batchMean, rowLogitDiff, tokensPerPrompt } from "../analysis/answer-metrics.ts";
import type { HookedTransformer } from "../model/hooked-transformer.ts";
import { logitReadout, type ReadoutDirection, readoutValue, unembedRows } from "../model/readout.ts";
import type { PatchAnswers, PatchMetric } from "./types.ts";

/** What the metric reads of one prompt's final position: logits of its tokens, or all logits. */
export type Readout = Float64Array | Float32Array;

export class MetricReader {
  /** Per prompt, the vocabulary ids whose logits the metric reads (null: all logits). */
  readonly tokens: (readonly number[])[] | null;
  /** Per prompt, the readout of each of `tokens`. */
  private readonly columns: ReadoutDirection[][] | null;

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
    this.columns = this.tokens ? this.tokens.map((toks) => toks.map((t) => logitReadout(model, t))) : null;
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
    const columns = this.columns[prompt];
    for (let r = 0; r < rows; r++) out.push(Float64Array.from(columns, (c) => readoutValue(c, y, r * D)));
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
