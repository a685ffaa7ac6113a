/**
 * Patching benchmark (called by `circuitscope bench`): sweep timings on a GPT-2-small-shaped random
 * model with an 8-token clean/corrupted pair, and the speed-up over the straightforward path measured
 * on a subset of the same sweep in the same run.
 */

import type { HookedTransformer } from "../src/model/hooked-transformer.ts";
import { patchFast } from "../src/patching/fast-patching.ts";
import { patchStraightforward } from "../src/patching/straightforward.ts";
import type { PatchSweepOptions } from "../src/patching/sweep.ts";
import type { KernelName } from "../src/tensor/kernels.ts";
import { randomGpt2Small } from "./gpt2-small.ts";

export interface PatchingBenchResult {
  neuron_sweep_all_pos_s: number;
  neuron_sweep_final_pos_s: number;
  resid_pre_sweep_s: number;
  heads_every_sweep_s: number;
  /** Straightforward / fast CPU seconds per patch, on layer-8 all-position neuron patches. */
  patching_speedup: number;
}

export interface PatchingBenchOptions {
  backend?: KernelName;
  /** Neurons patched with the straightforward path for the speed-up (default 24). */
  straightforwardSubset?: number;
  log?: (line: string) => void;
}

export async function benchPatching(
  model: HookedTransformer | null = null,
  opts: PatchingBenchOptions = {},
): Promise<PatchingBenchResult> {
  const m = model ?? randomGpt2Small({ backend: opts.backend ?? "onnx" });
  const log = opts.log ?? (() => {});
  const clean = ["We're helping our friend while they"];
  const corrupted = ["We are helping our friend while they"];
  const base = {
    clean,
    corrupted,
    answers: { answer: m.toSingleToken("'re"), wrong: m.toSingleToken(" are") },
  };
  if (m.toTokens(clean[0]).length !== 8) throw new Error("bench pair is not 8 tokens");
  let lastCpu = 0;
  const time = async (label: string, o: PatchSweepOptions, fn = patchFast): Promise<number> => {
    const t0 = performance.now();
    const c0 = process.cpuUsage();
    await fn(m, o);
    const s = (performance.now() - t0) / 1000;
    const c = process.cpuUsage(c0);
    lastCpu = (c.user + c.system) / 1e6;
    log(`${label}: ${s.toFixed(2)} s wall, ${lastCpu.toFixed(2)} s CPU`);
    return s;
  };
  const layer = Math.min(8, m.cfg.nLayers - 1);
  const neuronAll = await time(`neurons L${layer} all positions`, {
    ...base,
    target: { kind: "neurons", layer },
  });
  const neuronFinal = await time(`neurons L${layer} final position`, {
    ...base,
    target: { kind: "neurons", layer, pos: 7 },
  });
  const resid = await time("resid_pre [layer, pos]", { ...base, target: { kind: "resid_pre" } });
  const heads = await time("heads z/q/k/v/pattern [5, layer, head]", {
    ...base,
    target: { kind: "head_all" },
  });

  // Speed-up: CPU seconds per patch of the two paths on neuron subsets run back to back, so a busy
  // machine skews both alike (wall-clock sweeps above are sensitive to other load).
  const k = opts.straightforwardSubset ?? 24;
  const neurons = (count: number) => ({
    ...base,
    target: {
      kind: "custom" as const,
      hook: `blocks.${layer}.mlp.hook_post`,
      indexSets: Array.from({ length: count }, (_, n) => [[null, n]]),
    },
  });
  await time(`straightforward, ${k} neurons`, neurons(k), patchStraightforward);
  const slowCpu = lastCpu;
  await time("fast, 256 neurons", neurons(256));
  const speedup = slowCpu / k / (lastCpu / 256);
  log(`speed-up over the straightforward path: ${speedup.toFixed(1)}x`);
  if (!model) m.dispose();
  return {
    neuron_sweep_all_pos_s: neuronAll,
    neuron_sweep_final_pos_s: neuronFinal,
    resid_pre_sweep_s: resid,
    heads_every_sweep_s: heads,
    patching_speedup: speedup,
  };
}
