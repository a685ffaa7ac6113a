/**
 * The exact path of the `features` target (and of any plan whose sites are an SAE's
 * `hook_sae_acts_post`): activation patching of SAE features, the SAE spliced in with its error term.
 *
 * With the error term (SAELens' use_error_term), setting feature f at position p to its clean value
 * changes the hook's activation by exactly (f_clean − f_corrupted)·W_dec[f] / s there and nothing else,
 * so each patched run adds that to the corrupted activation at the hook; it starts at the hook's block
 * from the corrupted residual entering it, and many patched copies share one batched forward. A site
 * whose features are equal in both prompts is the corrupted run itself, and costs no run. The
 * straightforward path (one full spliced run per cell, writing the clean feature value) is the reference
 * it is tested against; attribution patching of features is in attribution-patching.ts.
 */
import { parseHookName } from "../model/hook-points.ts";
import type { HookedTransformer } from "../model/hooked-transformer.ts";
import type { Sae } from "../sae/sae.ts";
import { Tensor } from "../tensor/tensor.ts";
import { checkpointYield } from "../util/checkpoint-yield.ts";
import { rowBudgetFor } from "./fast-patching.ts";
import type { Readout } from "./metric.ts";
import { assembleResult, type PatchSweepOptions, setupSweep } from "./sweep.ts";
import { hookLayout, planSplices, selectElements } from "./targets.ts";
import { type PatchResult, patchAborted } from "./types.ts";

/** One patched copy: which result cell, and (position, feature, clean − corrupted value) of each change. */
interface FeatureJob {
  site: number;
  positions: Int32Array;
  features: Int32Array;
  deltas: Float64Array;
}

export async function patchFeaturesExact(
  model: HookedTransformer,
  opts: PatchSweepOptions,
): Promise<PatchResult> {
  const setup = setupSweep(model, opts);
  const { pairs, plan, reader } = setup;
  const sae = plan.sae;
  if (!sae) throw new Error(`The ${plan.target} target has no SAE: the feature path patches SAE features`);
  const acts = `${sae.cfg.hookName}.hook_sae_acts_post`;
  const stray = plan.sites.find((s) => s.hook !== acts);
  if (stray) throw new Error(`Feature patching patches ${acts}, not ${stray.hook}`);
  const hook = sae.cfg.hookName;
  const { layer } = parseHookName(hook);
  const startHook = layer === null ? null : `blocks.${layer}.hook_resid_pre`;
  const splices = planSplices(plan);
  const V = model.cfg.dVocab;
  const B = pairs.clean.length;
  const total = plan.sites.length * B;
  let done = 0;

  const patched: Readout[][] = plan.sites.map(() => new Array<Readout>(B));
  const cleanReadouts: Readout[] = [];
  const corruptedReadouts: Readout[] = [];
  for (let b = 0; b < B; b++) {
    const n = pairs.lengths[b];
    const run = (toks: number[]) =>
      model.runWithCache([toks], {
        splices,
        namesFilter: startHook ? [acts, startHook] : [acts],
        logits: "last",
      });
    const cleanRun = run(pairs.clean[b]);
    const corrRun = run(pairs.corrupted[b]);
    cleanReadouts.push(reader.fromLogits(b, cleanRun.logits!.data));
    const corruptedReadout = reader.fromLogits(b, corrRun.logits!.data);
    corruptedReadouts.push(corruptedReadout);
    const fClean = cleanRun.cache.get(acts).data;
    const fCorr = corrRun.cache.get(acts).data;

    const layout = hookLayout(acts, model.cfg, n, sae);
    const jobs: FeatureJob[] = [];
    plan.sites.forEach((site, s) => {
      const job = featureJob(s, selectElements(site.selectors, layout), fClean, fCorr, sae.cfg.dSae);
      if (job) jobs.push(job);
      else {
        patched[s][b] = corruptedReadout; // every selected feature is equal in both prompts
        done++;
      }
    });
    opts.onProgress?.(done, total);

    const residual = startHook ? corrRun.cache.get(startHook).data : null;
    const rowBudget = opts.rowBudget ?? rowBudgetFor(model, n);
    const size = Math.max(1, Math.min(opts.chunkSize ?? 256, Math.floor(rowBudget / n)));
    for (let from = 0; from < jobs.length; from += size) {
      const chunk = jobs.slice(from, from + size);
      const C = chunk.length;
      const add = (act: Tensor) => addDecoderRows(act, chunk, sae);
      const logits = residual
        ? model.run(new Tensor(repeat(residual, C), [C, n, model.cfg.dModel]), {
            startAtLayer: layer!,
            fwdHooks: [[hook, add]],
            logits: "last",
          })
        : model.run(
            Array.from({ length: C }, () => pairs.corrupted[b]),
            { fwdHooks: [[hook, add]], logits: "last" },
          );
      chunk.forEach((job, c) => {
        patched[job.site][b] = reader.fromLogits(b, logits.data.subarray(c * V, (c + 1) * V));
      });
      done += C;
      opts.onProgress?.(done, total);
      await checkpointYield(opts.signal, patchAborted);
    }
  }
  return assembleResult(setup, model, cleanReadouts, corruptedReadouts, patched, "exact");
}

/** The changes a site makes (selected features whose clean and corrupted values differ), or null. */
function featureJob(
  site: number,
  selected: { offsets: Int32Array; positions: Int32Array },
  fClean: Float32Array,
  fCorr: Float32Array,
  dSae: number,
): FeatureJob | null {
  const positions: number[] = [];
  const features: number[] = [];
  const deltas: number[] = [];
  selected.offsets.forEach((o, i) => {
    if (fClean[o] === fCorr[o]) return;
    positions.push(selected.positions[i]);
    features.push(o % dSae);
    deltas.push(fClean[o] - fCorr[o]);
  });
  if (deltas.length === 0) return null;
  return {
    site,
    positions: Int32Array.from(positions),
    features: Int32Array.from(features),
    deltas: Float64Array.from(deltas),
  };
}

/** Adds copy c's Σ (f_clean − f_corrupted)·W_dec[f] / s at each changed position of the hook's activation. */
function addDecoderRows(act: Tensor, jobs: readonly FeatureJob[], sae: Sae): void {
  const { dIn } = sae.cfg;
  const per = act.size / jobs.length; // [pos, d_in] of one copy (hook_z: its heads flattened)
  const inv = 1 / sae.scalingFactor;
  jobs.forEach((job, c) => {
    for (let i = 0; i < job.deltas.length; i++) {
      const o = c * per + job.positions[i] * dIn;
      const w = job.features[i] * dIn;
      const delta = job.deltas[i] * inv;
      for (let d = 0; d < dIn; d++) act.data[o + d] += delta * sae.W_dec[w + d];
    }
  });
}

function repeat(x: Float32Array, times: number): Float32Array {
  const out = new Float32Array(x.length * times);
  for (let t = 0; t < times; t++) out.set(x, t * x.length);
  return out;
}
