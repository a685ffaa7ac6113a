/**
 * Attribution patching: a first-order estimate of every activation-patching result from one clean
 * forward, one corrupted forward and one backward pass per prompt pair. The effect of patching the
 * clean value of activation a into the corrupted run is estimated as (a_clean - a_corrupted) · dM/da,
 * the gradient taken on the corrupted run; a site patching several elements sums their terms.
 * Results have the exact-patching shape (PatchResult), so the two can be compared cell by cell
 * (see attribution-compare.ts for when the estimate can be trusted).
 */
import { backwardCacheNames, backwardMany } from "../gradients/backward.ts";
import type { BackwardCopies } from "../gradients/backward-copies.ts";
import type { LogitGradient } from "../gradients/logit-metric.ts";
import type { ActivationCache } from "../model/activation-cache.ts";
import { parseHookName } from "../model/hook-points.ts";
import type { HookedTransformer } from "../model/hooked-transformer.ts";
import type { Sae } from "../sae/sae.ts";
import type { TokenizeOptions } from "../tokenizer/tokenizer.ts";
import { type AttributionMetric, metricSeeds } from "./attribution-metric.ts";
import { type PromptList, preparePairs } from "./pairs.ts";
import { buildPatchResult } from "./result.ts";
import {
  hookLayout,
  type PatchTarget,
  planSplices,
  planTarget,
  type Selector,
  selectElements,
} from "./targets.ts";
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
  /** Called as the work advances with (steps done, total): each pair's forwards, then each backward stage. */
  onProgress?: (done: number, total: number) => void;
  /** Keep or release the backward copies of the weights (default "auto": gradients/backward-copies.ts). */
  backwardCopies?: BackwardCopies;
}

/** Attribution patching of several targets from the same forward and backward passes. */
export function attributionPatchingAll(model: HookedTransformer, opts: AttributionOptions): PatchResult[] {
  if (opts.targets.length === 0) throw new Error("No attribution targets: give at least one target");
  const pairs = preparePairs(model, opts.clean, opts.corrupted, opts);
  const plans = opts.targets.map((t) => planTarget(t, model.cfg, pairs.nPos));
  const B = pairs.clean.length;
  const seeds = metricSeeds(model, opts.metric, opts.answers, B);
  const siteHooks = new Set(plans.flatMap((p) => p.sites.map((s) => s.hook)));
  // SAE features (sites on an SAE's hook_sae_acts_post): the SAE is spliced in with its error term, and
  // the gradient of a feature is its decoder row times the gradient at the SAE's hook.
  const saes = saesOfPlans(plans);
  const splices = plans.filter((p) => p.sae && saes.get(saeActs(p.sae)) === p.sae).flatMap(planSplices);
  const gradHook = (h: string) => saes.get(h)?.cfg.hookName ?? h;
  const gradHooks = new Set([...siteHooks].map(gradHook));
  const allHooks = new Set(backwardCacheNames(model.cfg));
  for (const h of gradHooks) {
    if (!allHooks.has(h))
      throw new Error(
        `Attribution patching has no gradient for ${h}: choose a default (non-optional) hook point`,
      );
  }

  // Forward passes, one prompt at a time (no padding): clean activations of the patched hooks, and
  // the full corrupted cache the backward pass reads.
  const finalLogits = (logits: Float32Array) => logits.slice();
  const steps = 2 * B + model.cfg.nLayers + 1; // each forward, then each backward stage
  let done = 0;
  const forward = (toks: number[], keep: ReadonlySet<string>) => {
    const run = model.runWithCache([toks], { namesFilter: (n) => keep.has(n), logits: "last", splices });
    opts.onProgress?.(++done, steps);
    return run;
  };
  const cleanRuns = pairs.clean.map((toks) => forward(toks, siteHooks));
  const corruptedRuns = pairs.corrupted.map((toks) => forward(toks, new Set([...allHooks, ...siteHooks])));
  const cleanLogits = cleanRuns.map((r) => finalLogits(r.logits!.data));
  const corruptedLogits = corruptedRuns.map((r) => finalLogits(r.logits!.data));
  const clean = seeds.batchValue(cleanLogits);
  const corrupted = seeds.batchValue(corruptedLogits);
  const cleanPer = cleanLogits.map((l, b) => seeds.promptValue(b, l));
  const corruptedPer = corruptedLogits.map((l, b) => seeds.promptValue(b, l));
  const batchSeeds = seeds.batchSeeds(corruptedLogits);

  // One backward pass per prompt of the batch metric, and of the prompt's own metric where its seed is
  // not the batch seed times a constant (a mean over prompts: then one pass serves both). All passes run
  // together layer by layer, so each layer's backward copies of the weights are built once (and
  // released after it when memory is tight: gradients/backward-copies.ts).
  const promptSeeds = corruptedLogits.map((l, b) => seeds.promptSeed(b, l));
  const factors = promptSeeds.map((s, b) => seedRatio(s, batchSeeds[b]));
  const requests = [
    ...batchSeeds.map((seed, b) => ({ cache: corruptedRuns[b].cache, seed })),
    ...promptSeeds.flatMap((seed, b) =>
      factors[b] === null ? [{ cache: corruptedRuns[b].cache, seed }] : [],
    ),
  ];
  const grads = backwardMany(model, requests, {
    namesFilter: (n) => gradHooks.has(n),
    copies: opts.backwardCopies,
    onProgress: (stage) => opts.onProgress?.(2 * B + stage, steps),
  });
  let nextPromptGrad = B;

  // est[plan][site] for the batch metric; per[plan][b][site] for each prompt's own metric.
  const est = plans.map((p) => new Float64Array(p.sites.length));
  const per = plans.map((p) => Array.from({ length: B }, () => new Float64Array(p.sites.length)));
  // Prompts of one length share their sites' offsets.
  const offsetsByLength = new Map<number, Int32Array[][]>();
  for (let b = 0; b < B; b++) {
    const factor = factors[b];
    const gradPrompt = factor === null ? grads[nextPromptGrad++] : null;
    const n = pairs.lengths[b];
    const terms = (g: ActivationCache) =>
      deltaTimesGrad(siteHooks, cleanRuns[b].cache, corruptedRuns[b].cache, g, saes);
    const termsBatch = terms(grads[b]);
    const termsPrompt = gradPrompt ? terms(gradPrompt) : null;
    let offsetsOf = offsetsByLength.get(n);
    if (!offsetsOf) {
      const of = siteOffsets(model, n, saes);
      offsetsOf = plans.map((plan) => plan.sites.map((site) => of(site.hook, site.selectors)));
      offsetsByLength.set(n, offsetsOf);
    }
    plans.forEach((plan, i) => {
      plan.sites.forEach((site, s) => {
        const offsets = offsetsOf[i][s];
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
  saes: ReadonlyMap<string, Sae>,
): (hook: string, selectors: readonly Selector[]) => Int32Array {
  const memo = new Map<string, Int32Array>();
  return (hook, selectors) => {
    const local = parseHookName(hook).hook;
    // An SAE hook's width is the SAE's (two SAEs' hooks of one local name may differ).
    const key = `${local}|${saes.get(hook)?.cfg.dSae ?? ""}|${selectors.map((sel) => sel.join(",")).join(";")}`;
    let offsets = memo.get(key);
    if (!offsets) {
      offsets = selectElements(selectors, hookLayout(hook, model.cfg, n, saes.get(hook))).offsets;
      memo.set(key, offsets);
    }
    return offsets;
  };
}

/** The acts_post hook of each plan's SAE → that SAE; one SAE per hook point. */
function saesOfPlans(plans: readonly { sae?: Sae }[]): Map<string, Sae> {
  const saes = new Map<string, Sae>();
  for (const { sae } of plans) {
    if (!sae) continue;
    const other = saes.get(saeActs(sae));
    if (other && other !== sae)
      throw new Error(
        `Two SAEs on ${sae.cfg.hookName}: attribution patching splices one SAE per hook point, so run their targets separately`,
      );
    saes.set(saeActs(sae), sae);
  }
  return saes;
}

function saeActs(sae: Sae): string {
  return `${sae.cfg.hookName}.hook_sae_acts_post`;
}

/**
 * Per hook: (clean - corrupted) * grad, element-wise over the prompt's activation. An SAE's features take
 * their gradient from the SAE's hook: dM/df = W_dec[f] · dM/dx / s (the error term held fixed).
 */
function deltaTimesGrad(
  hooks: ReadonlySet<string>,
  clean: ActivationCache,
  corrupted: ActivationCache,
  grads: ActivationCache,
  saes: ReadonlyMap<string, Sae>,
): Map<string, Float64Array> {
  const out = new Map<string, Float64Array>();
  for (const h of hooks) {
    const c = clean.get(h).data;
    const x = corrupted.get(h).data;
    const sae = saes.get(h);
    if (sae) {
      out.set(h, featureTerms(sae, c, x, grads.get(sae.cfg.hookName).data));
      continue;
    }
    const g = grads.get(h).data;
    const t = new Float64Array(c.length);
    // Masked attention scores are -inf in both runs: no difference, no term.
    for (let i = 0; i < c.length; i++) if (c[i] !== x[i]) t[i] = (c[i] - x[i]) * g[i];
    out.set(h, t);
  }
  return out;
}

/** (f_clean − f_corrupted)·(W_dec[f] · g[pos]) / s for each feature that differs, [pos, d_sae]. */
function featureTerms(sae: Sae, fClean: Float32Array, fCorr: Float32Array, g: Float32Array): Float64Array {
  const { dIn, dSae } = sae.cfg;
  const inv = 1 / sae.scalingFactor;
  const t = new Float64Array(fClean.length);
  for (let i = 0; i < fClean.length; i++) {
    if (fClean[i] === fCorr[i]) continue;
    const row = (i % dSae) * dIn;
    const at = Math.floor(i / dSae) * dIn;
    let dot = 0;
    for (let d = 0; d < dIn; d++) dot += sae.W_dec[row + d] * g[at + d];
    t[i] = (fClean[i] - fCorr[i]) * dot * inv;
  }
  return t;
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
