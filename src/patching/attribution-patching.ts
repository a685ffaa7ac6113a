/**
 * Attribution patching: a first-order estimate of every activation-patching result from one clean
 * forward, one corrupted forward and one backward pass per prompt pair. The effect of patching the
 * clean value of activation a into the corrupted run is estimated as (a_clean - a_corrupted) · dM/da,
 * the gradient taken on the corrupted run; a site patching several elements sums their terms.
 * Results have the exact-patching shape (PatchResult), so the two can be compared cell by cell
 * (see attribution-compare.ts for when the estimate can be trusted).
 */
import { backwardCacheNames, backwardFromCache } from "../gradients/backward.ts";
import type { LogitGradient } from "../gradients/logit-metric.ts";
import type { ActivationCache } from "../model/activation-cache.ts";
import { parseHookName } from "../model/hook-points.ts";
import type { HookedTransformer } from "../model/hooked-transformer.ts";
import type { TokenizeOptions } from "../tokenizer/tokenizer.ts";
import { type AttributionMetric, metricSeeds } from "./attribution-metric.ts";
import { type PromptList, preparePairs } from "./pairs.ts";
import { buildPatchResult } from "./result.ts";
import { hookLayout, type PatchTarget, planTarget, type Selector, selectElements } from "./targets.ts";
import type { PatchAnswers, PatchResult } from "./types.ts";

/** Attribution patching estimates every patch target (`neurons` without a layer: every layer). */
export type AttributionTarget = PatchTarget;

export interface AttributionOptions extends TokenizeOptions {
  clean: PromptList;
  corrupted: PromptList;
  /** Needed by the default logit-difference metric. */
  answers?: PatchAnswers;
  targets: readonly AttributionTarget[];
  /** Default: the batch-mean logit difference, reported normalised as in activation patching. */
  metric?: AttributionMetric;
  /** Called after each prompt pair with (pairs done, total). */
  onProgress?: (done: number, total: number) => void;
}

/** Attribution patching of several targets from the same forward and backward passes. */
export function attributionPatchingAll(model: HookedTransformer, opts: AttributionOptions): PatchResult[] {
  if (opts.targets.length === 0) throw new Error("No attribution targets: give at least one target");
  const pairs = preparePairs(model, opts.clean, opts.corrupted, opts);
  const plans = opts.targets.map((t) => planTarget(t, model.cfg, pairs.nPos));
  const B = pairs.clean.length;
  const seeds = metricSeeds(model, opts.metric, opts.answers, B);
  const siteHooks = new Set(plans.flatMap((p) => p.sites.map((s) => s.hook)));
  const allHooks = new Set(backwardCacheNames(model.cfg));
  for (const h of siteHooks) {
    if (!allHooks.has(h))
      throw new Error(
        `Attribution patching has no gradient for ${h}: choose a default (non-optional) hook point`,
      );
  }

  // Forward passes, one prompt at a time (no padding): clean activations of the patched hooks, and
  // the full corrupted cache the backward pass reads.
  const finalLogits = (logits: Float32Array) => logits.slice();
  const cleanRuns = pairs.clean.map((toks) =>
    model.runWithCache([toks], { namesFilter: (n) => siteHooks.has(n), logits: "last" }),
  );
  const corruptedRuns = pairs.corrupted.map((toks) =>
    model.runWithCache([toks], { namesFilter: (n) => allHooks.has(n), logits: "last" }),
  );
  const cleanLogits = cleanRuns.map((r) => finalLogits(r.logits!.data));
  const corruptedLogits = corruptedRuns.map((r) => finalLogits(r.logits!.data));
  const clean = seeds.batchValue(cleanLogits);
  const corrupted = seeds.batchValue(corruptedLogits);
  const cleanPer = cleanLogits.map((l, b) => seeds.promptValue(b, l));
  const corruptedPer = corruptedLogits.map((l, b) => seeds.promptValue(b, l));
  const batchSeeds = seeds.batchSeeds(corruptedLogits);

  // est[plan][site] for the batch metric; per[plan][b][site] for each prompt's own metric.
  const est = plans.map((p) => new Float64Array(p.sites.length));
  const per = plans.map((p) => Array.from({ length: B }, () => new Float64Array(p.sites.length)));
  for (let b = 0; b < B; b++) {
    const promptSeed = seeds.promptSeed(b, corruptedLogits[b]);
    const gradBatch = backwardFromCache(model, corruptedRuns[b].cache, batchSeeds[b]);
    // The prompt's own metric usually has the batch metric's seed times a constant (a mean over
    // prompts): then one backward pass serves both.
    const factor = seedRatio(promptSeed, batchSeeds[b]);
    const gradPrompt = factor === null ? backwardFromCache(model, corruptedRuns[b].cache, promptSeed) : null;
    const n = pairs.lengths[b];
    const terms = (grads: ActivationCache) =>
      deltaTimesGrad(siteHooks, cleanRuns[b].cache, corruptedRuns[b].cache, grads);
    const termsBatch = terms(gradBatch);
    const termsPrompt = gradPrompt ? terms(gradPrompt) : null;
    const offsetsOf = siteOffsets(model, n);
    plans.forEach((plan, i) => {
      plan.sites.forEach((site, s) => {
        const offsets = offsetsOf(site.hook, site.selectors);
        const tb = termsBatch.get(site.hook)!;
        let sum = 0;
        for (const o of offsets) sum += tb[o];
        est[i][s] += sum;
        if (termsPrompt) {
          const tp = termsPrompt.get(site.hook)!;
          let sp = 0;
          for (const o of offsets) sp += tp[o];
          per[i][b][s] = sp;
        } else {
          per[i][b][s] = sum * factor!;
        }
      });
    });
    opts.onProgress?.(b + 1, B);
  }

  return plans.map((plan, i) => {
    const nSites = plan.sites.length;
    const perRaw = new Float64Array(B * nSites);
    for (let b = 0; b < B; b++)
      for (let s = 0; s < nSites; s++) perRaw[b * nSites + s] = corruptedPer[b] + per[i][b][s];
    return buildPatchResult({
      model,
      pairs,
      plan,
      method: "attribution",
      metric: {
        clean,
        corrupted,
        cleanPer,
        corruptedPer,
        raw: est[i].map((d) => corrupted + d),
        perRaw,
      },
    });
  });
}

/** Attribution patching of one target. */
export function attributionPatching(
  model: HookedTransformer,
  opts: Omit<AttributionOptions, "targets"> & { target: AttributionTarget },
): PatchResult {
  return attributionPatchingAll(model, { ...opts, targets: [opts.target] })[0];
}

/**
 * Offsets of a site's elements in a prompt of n positions. Memoised on the hook's in-block name and the
 * selectors: the same site repeats in every layer (e.g. neuron k of each of 12 layers).
 */
function siteOffsets(
  model: HookedTransformer,
  n: number,
): (hook: string, selectors: readonly Selector[]) => Int32Array {
  const memo = new Map<string, Int32Array>();
  return (hook, selectors) => {
    const local = parseHookName(hook).hook;
    const key = `${local}|${selectors.map((sel) => sel.join(",")).join(";")}`;
    let offsets = memo.get(key);
    if (!offsets) {
      offsets = selectElements(selectors, hookLayout(hook, model.cfg, n)).offsets;
      memo.set(key, offsets);
    }
    return offsets;
  };
}

/** Per hook: (clean - corrupted) * grad, element-wise over the prompt's activation. */
function deltaTimesGrad(
  hooks: ReadonlySet<string>,
  clean: ActivationCache,
  corrupted: ActivationCache,
  grads: ActivationCache,
): Map<string, Float64Array> {
  const out = new Map<string, Float64Array>();
  for (const h of hooks) {
    const c = clean.get(h).data;
    const x = corrupted.get(h).data;
    const g = grads.get(h).data;
    const t = new Float64Array(c.length);
    // Masked attention scores are -inf in both runs: no difference, no term.
    for (let i = 0; i < c.length; i++) if (c[i] !== x[i]) t[i] = (c[i] - x[i]) * g[i];
    out.set(h, t);
  }
  return out;
}

/** k with a = k·b entry-wise (same sparsity pattern), or null. */
function seedRatio(a: LogitGradient, b: LogitGradient): number | null {
  if (a.kind !== "sparse" || b.kind !== "sparse" || a.entries.length !== b.entries.length) return null;
  let k: number | null = null;
  for (let i = 0; i < a.entries.length; i++) {
    const x = a.entries[i];
    const y = b.entries[i];
    if (x.token !== y.token) return null;
    if (y.weight === 0) {
      if (x.weight !== 0) return null;
      continue;
    }
    const r = x.weight / y.weight;
    if (k === null) k = r;
    else if (Math.abs(r - k) > 1e-9 * Math.abs(k)) return null;
  }
  return k;
}
