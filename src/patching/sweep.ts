/**
 * What every patching method shares: the sweep options, their validation into prompt pairs + a plan +
 * a metric reader, and assembling per-site readouts into a PatchResult.
 */
import type { HookedTransformer } from "../model/hooked-transformer.ts";
import type { TokenizeOptions } from "../tokenizer/tokenizer.ts";
import { MetricReader, type Readout } from "./metric.ts";
import { type PromptList, type PromptPairs, preparePairs } from "./pairs.ts";
import { buildPatchResult } from "./result.ts";
import { type PatchPlan, type PatchTarget, planTarget } from "./targets.ts";
import type { PatchAnswers, PatchMetric, PatchResult } from "./types.ts";

export interface PatchSweepOptions extends TokenizeOptions {
  clean: PromptList;
  corrupted: PromptList;
  /** Needed by the default logit-difference metric. */
  answers?: PatchAnswers;
  target: PatchTarget;
  metric?: PatchMetric;
  /** Most patched copies in one batched forward (default 256). */
  chunkSize?: number;
  /** Most positions in one batched forward (chunk size x positions computed; default 4096); bounds memory. */
  rowBudget?: number;
  /** Called after each chunk with (patched runs done, total). */
  onProgress?: (done: number, total: number) => void;
  signal?: AbortSignal;
}

export interface SweepSetup {
  pairs: PromptPairs;
  plan: PatchPlan;
  reader: MetricReader;
}

export function setupSweep(model: HookedTransformer, opts: PatchSweepOptions): SweepSetup {
  const pairs = preparePairs(model, opts.clean, opts.corrupted, opts);
  const plan = planTarget(opts.target, model.cfg, pairs.nPos);
  const reader = new MetricReader(
    model,
    opts.metric ?? { kind: "logit_diff" },
    opts.answers,
    pairs.clean.length,
  );
  return { pairs, plan, reader };
}

/**
 * `patched[site][prompt]` readouts plus the clean and corrupted readouts per prompt → the result,
 * normalised both for the batch metric and per prompt.
 */
export function assembleResult(
  setup: SweepSetup,
  model: HookedTransformer,
  cleanReadouts: readonly Readout[],
  corruptedReadouts: readonly Readout[],
  patched: readonly (readonly Readout[])[],
  method: string,
): PatchResult {
  const { plan, reader, pairs } = setup;
  const nSites = plan.sites.length;
  const nPrompts = pairs.clean.length;
  const raw = new Float64Array(nSites);
  const perRaw = new Float64Array(nPrompts * nSites);
  for (let s = 0; s < nSites; s++) {
    raw[s] = reader.value(patched[s]);
    for (let b = 0; b < nPrompts; b++) perRaw[b * nSites + s] = reader.value([patched[s][b]]);
  }
  return buildPatchResult({
    model,
    pairs,
    plan,
    method,
    metric: {
      clean: reader.value(cleanReadouts),
      corrupted: reader.value(corruptedReadouts),
      cleanPer: cleanReadouts.map((r) => reader.value([r])),
      corruptedPer: corruptedReadouts.map((r) => reader.value([r])),
      raw,
      perRaw,
    },
  });
}
