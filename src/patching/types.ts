/**
 * Shapes shared by every activation-patching method (exact, straightforward, and the attribution
 * approximation built elsewhere), so they all return one result type.
 */

/** Which tokens the metric reads: one answer and one wrong token, shared by the batch or one per prompt. */
export interface PatchAnswers {
  answer: number | readonly number[];
  wrong: number | readonly number[];
}

/**
 * The metric of a patched run.
 * - `logit_diff` (default): logit(answer) - logit(wrong) at each prompt's final position.
 * - `answer_logits`: a user function of the per-prompt logit vectors of `tokens` (per prompt; default
 *   [answer, wrong]) at the final position. Called with every prompt for the batch value, with one
 *   prompt for per-prompt values.
 * - `final_logits`: a user function of the per-prompt final-position logits [d_vocab] (costs a full unembedding).
 */
export type PatchMetric =
  | { kind: "logit_diff" }
  | {
      kind: "answer_logits";
      tokens?: readonly (readonly number[])[];
      fn: (answerLogits: readonly Float64Array[]) => number;
    }
  | { kind: "final_logits"; fn: (finalLogits: readonly Float32Array[]) => number };

export type PatchMethod = "exact" | "straightforward";

/**
 * Result of a sweep. Tensors are flat row-major over `shape` (the target's axes); per-prompt tensors
 * are [prompt, ...shape]. The data alone (what JSON and a worker's message carry); `PatchResult` adds
 * access by axis name.
 */
export interface PatchResultData {
  /** Target name, e.g. "resid_pre", "head_z", "neurons". */
  target: string;
  axes: string[];
  shape: number[];
  /**
   * Labels per axis; null where plain indices serve. "pos": each position's clean token ("a|b" where the
   * prompts differ), null when the pairs differ in length (position p is then a different word per pair).
   */
  labels: (string[] | null)[];
  /** Normalised batch metric: (patched - corrupted) / (clean - corrupted); 1 = fully restored. */
  values: Float64Array;
  /** The batch metric of each patched run (the batch-mean logit difference by default). */
  raw: Float64Array;
  /** Batch metric of the clean and the corrupted runs. */
  clean: number;
  corrupted: number;
  perPrompt: {
    /** [prompt, ...shape]: each prompt's metric (its logit difference by default) under each patch. */
    raw: Float64Array;
    /** [prompt, ...shape]: normalised with that prompt's own clean and corrupted values. */
    values: Float64Array;
    clean: number[];
    corrupted: number[];
  };
  method: string;
  /**
   * head_all on a grouped-query model: query heads per key/value head. The k and v cells of the query
   * heads of one group patch one and the same key/value head: one effect, repeated in each of their cells.
   */
  kvGroupSize?: number;
}

/** A cell of a result by axis name: `{ layer: 3, head: 1 }`; add `prompt` for that prompt's own value. */
export type PatchIndex = Readonly<Record<string, number>>;

export interface PatchResult extends PatchResultData {
  /**
   * The normalised value of one cell by axis name — `result.at({ layer: 3, head: 1 })` is
   * `values[3 * nHeads + 1]` — or, with `prompt`, that prompt's own (`perPrompt.values`). Every axis must
   * be named. Not enumerable: JSON and structured clone carry the data only (`patchResult` restores it).
   */
  at(index: PatchIndex): number;
}

/** Raised when a sweep is stopped through its AbortSignal (e.g. Ctrl-C in the CLI). */
export class PatchAbortedError extends Error {
  constructor() {
    super("Patching sweep stopped before it finished");
    this.name = "PatchAbortedError";
  }
}

/** The long sweeps' one abort error, for `checkpointYield` (src/util/checkpoint-yield.ts). */
export function patchAborted(): Error {
  return new PatchAbortedError();
}
