/**
 * SAE features as a patching unit: every feature at every position of one clean/corrupted pair, exactly
 * and by attribution patching, on the normalised logit difference ((patched − corrupted) / (clean −
 * corrupted), as activation patching reports it).
 *
 * With the SAE's error term (SAELens' use_error_term), patching feature f at position p with its clean
 * value changes the hook's activation by exactly (f_clean − f_corrupted)·W_dec[f] / s there, so:
 * - exact: one run per cell whose feature differs between the two prompts (the others are exactly 0 —
 *   the run is the corrupted one), started at the hook's block from the corrupted residual and batched;
 * - attribution: (f_clean − f_corrupted)·(W_dec[f] · dM/dx) / s with the gradient at the hook taken on the
 *   corrupted run: every cell from one forward and one backward pass.
 */
import { rowLogitDiff } from "../analysis/answer-metrics.ts";
import { runWithGradients } from "../gradients/backward.ts";
import { logitDiffMetric } from "../gradients/logit-metric.ts";
import { parseHookName } from "../model/hook-points.ts";
import type { HookedTransformer } from "../model/hooked-transformer.ts";
import { saeHookName, saeSplice } from "../sae/attach.ts";
import type { Sae } from "../sae/sae.ts";
import { Tensor } from "../tensor/tensor.ts";
import { preparePairs } from "./pairs.ts";

export interface FeaturePatchOptions {
  clean: string | readonly number[];
  corrupted: string | readonly number[];
  answer: number;
  wrong: number;
  sae: Sae;
  /** "exact", "attribution" or both (default). */
  methods?: readonly ("exact" | "attribution")[];
  /** Patched runs per batch of the exact method (default 16). */
  batchSize?: number;
}

export interface FeaturePatchResult {
  axes: ["pos", "feature"];
  shape: [number, number];
  /** Logit difference of the clean and the corrupted run. */
  clean: number;
  corrupted: number;
  /** [pos, d_sae] normalised; null when not asked for. */
  exact: Float64Array | null;
  attribution: Float64Array | null;
  /** Cells whose feature differs between the prompts (the only ones the exact method runs). */
  cellsRun: number;
}

export function patchFeatures(model: HookedTransformer, opts: FeaturePatchOptions): FeaturePatchResult {
  const { sae } = opts;
  const methods = new Set(opts.methods ?? ["exact", "attribution"]);
  const pairs = preparePairs(model, [opts.clean as string], [opts.corrupted as string]);
  const clean = pairs.clean[0];
  const corrupted = pairs.corrupted[0];
  const P = clean.length;
  const { dIn, dSae, hookName: hook } = sae.cfg;
  const acts = saeHookName(sae, "hook_sae_acts_post");
  const run = (toks: number[]) =>
    model.runWithCache([toks], {
      splices: [saeSplice(sae, { useErrorTerm: true })],
      namesFilter: [acts, hook, ...residPre(hook)],
      logits: "last",
    });
  const cleanRun = run(clean);
  const corrRun = run(corrupted);
  const V = model.cfg.dVocab;
  const diff = (logits: Float32Array, b = 0) =>
    rowLogitDiff(logits.subarray(b * V, (b + 1) * V), opts.answer, opts.wrong);
  const cleanValue = diff(cleanRun.logits!.data);
  const corrValue = diff(corrRun.logits!.data);
  const span = cleanValue - corrValue;
  if (!Number.isFinite(span) || Math.abs(span) < 1e-6) {
    throw new Error(
      `Clean and corrupted logit differences are (nearly) equal (${cleanValue} vs ${corrValue}): the normalised metric is undefined — choose prompts whose answers differ`,
    );
  }
  const fClean = cleanRun.cache.get(acts).data;
  const fCorr = corrRun.cache.get(acts).data;
  const inv = 1 / sae.scalingFactor;
  const cells: number[] = [];
  for (let i = 0; i < P * dSae; i++) if (fClean[i] !== fCorr[i]) cells.push(i);

  let attribution: Float64Array | null = null;
  if (methods.has("attribution")) {
    const g = runWithGradients(model, [corrupted], logitDiffMetric(opts.answer, opts.wrong)).grads.get(
      hook,
    ).data;
    attribution = new Float64Array(P * dSae);
    for (const i of cells) {
      const p = Math.floor(i / dSae);
      const f = i % dSae;
      let dot = 0;
      for (let d = 0; d < dIn; d++) dot += sae.W_dec[f * dIn + d] * g[p * dIn + d];
      attribution[i] = ((fClean[i] - fCorr[i]) * dot * inv) / span;
    }
  }

  let exact: Float64Array | null = null;
  if (methods.has("exact")) {
    exact = new Float64Array(P * dSae);
    const { layer } = parseHookName(hook);
    const start = layer ?? 0;
    const resid = layer === null ? null : corrRun.cache.get(residPre(hook)[0]).data;
    const batchSize = opts.batchSize ?? 16;
    for (let from = 0; from < cells.length; from += batchSize) {
      const batch = cells.slice(from, from + batchSize);
      const B = batch.length;
      // Each batch row adds one cell's (f_clean − f_corrupted)·W_dec[f] at its position.
      const add = (act: Tensor) => {
        const per = act.size / B;
        batch.forEach((i, b) => {
          const p = Math.floor(i / dSae);
          const f = i % dSae;
          const delta = (fClean[i] - fCorr[i]) * inv;
          const o = b * per + p * dIn;
          for (let d = 0; d < dIn; d++) act.data[o + d] += delta * sae.W_dec[f * dIn + d];
        });
      };
      const logits = resid
        ? model.run(new Tensor(repeat(resid, B), [B, P, model.cfg.dModel]), {
            startAtLayer: start,
            fwdHooks: [[hook, add]],
            logits: "last",
          })
        : model.run(
            Array.from({ length: B }, () => corrupted),
            { fwdHooks: [[hook, add]], logits: "last" },
          );
      batch.forEach((i, b) => {
        exact![i] = (diff(logits.data, b) - corrValue) / span;
      });
    }
  }
  return {
    axes: ["pos", "feature"],
    shape: [P, dSae],
    clean: cleanValue,
    corrupted: corrValue,
    exact,
    attribution,
    cellsRun: cells.length,
  };
}

/** The resid_pre of the hook's block (where a run from that block starts), if the hook is in a block. */
function residPre(hook: string): string[] {
  const { layer } = parseHookName(hook);
  return layer === null ? [] : [`blocks.${layer}.hook_resid_pre`];
}

function repeat(x: Float32Array, times: number): Float32Array {
  const out = new Float32Array(x.length * times);
  for (let t = 0; t < times; t++) out.set(x, t * x.length);
  return out;
}
