/**
 * The reference path: one full forward of the padded corrupted batch per patch, with a hook that
 * writes the clean activation into the selected elements (what TransformerLens does). Slow but obviously
 * right; the fast path is tested against it.
 */
import type { HookedTransformer } from "../model/hooked-transformer.ts";
import type { Tensor } from "../tensor/tensor.ts";
import { checkpointYield } from "../util/checkpoint-yield.ts";
import type { Readout } from "./metric.ts";
import { assembleResult, type PatchSweepOptions, setupSweep } from "./sweep.ts";
import { hookLayout, planSplices, selectElements } from "./targets.ts";
import { type PatchResult, patchAborted } from "./types.ts";

export async function patchStraightforward(
  model: HookedTransformer,
  opts: PatchSweepOptions,
): Promise<PatchResult> {
  const setup = setupSweep(model, opts);
  const { pairs, plan, reader } = setup;
  const B = pairs.clean.length;
  const hooks = new Set(plan.sites.map((s) => s.hook));
  const splices = planSplices(plan); // an SAE (features), spliced in with its error term
  const cleanRun = model.runWithCache(pairs.clean, { namesFilter: [...hooks], logits: "last", splices });
  const finalLogits = (logits: Tensor): Readout[] => {
    const V = model.cfg.dVocab;
    return Array.from({ length: B }, (_, b) =>
      reader.fromLogits(b, logits.data.subarray(b * V, (b + 1) * V)),
    );
  };
  const cleanReadouts = finalLogits(cleanRun.logits!);
  const corruptedReadouts = finalLogits(model.run(pairs.corrupted, { logits: "last", splices }));

  const patched: Readout[][] = [];
  for (const [i, site] of plan.sites.entries()) {
    const cleanAct = cleanRun.cache.get(site.hook); // [B, ...per-prompt shape at the padded length]
    const per = cleanAct.data.length / B;
    const { offsets } = selectElements(
      site.selectors,
      hookLayout(site.hook, model.cfg, pairs.nPos, plan.sae),
    );
    const logits = model.run(pairs.corrupted, {
      logits: "last",
      splices,
      fwdHooks: [
        [
          site.hook,
          (act) => {
            for (let b = 0; b < B; b++)
              for (const o of offsets) act.data[b * per + o] = cleanAct.data[b * per + o];
          },
        ],
      ],
    });
    patched.push(finalLogits(logits));
    opts.onProgress?.(i + 1, plan.sites.length);
    if (i % 16 === 15) await checkpointYield(opts.signal, patchAborted);
  }
  return assembleResult(setup, model, cleanReadouts, corruptedReadouts, patched, "straightforward");
}
