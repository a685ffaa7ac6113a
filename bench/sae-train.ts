/**
 * `sae_train_tokens_per_s`: TopK SAE training steps (d_in 64, d_sae 512, k 8, batches of 4,096) on
 * stories260k's blocks.2.hook_resid_pre activations of the bundled sampled corpus, as issue 29 sets it.
 * The harvest is not timed; a few steps warm up first. Wall time and the process's CPU time are both reported,
 * for the default (sparse) step and, as `sae_train_dense_*`, for the step with its products as dense GEMMs.
 */
import { join } from "node:path";
import { openCorpus } from "../src/corpus/sources.ts";
import { HookedTransformer } from "../src/model/hooked-transformer.ts";
import { harvestActivations, tokenSequences } from "../src/sae-train/harvest.ts";
import { defaultTrainSettings, FLOAT32_OPS, initTrainState, trainSteps } from "../src/sae-train/trainer.ts";
import type { Kernels } from "../src/tensor/kernels.ts";
import { PACKAGE_ROOT } from "../src/util/package-info.ts";

export interface BenchSaeTrainOptions {
  kernels: Kernels;
  /** Timed steps (default 40). */
  steps?: number;
}

export async function benchSaeTrain(opts: BenchSaeTrainOptions): Promise<Record<string, number>> {
  const root = PACKAGE_ROOT;
  const model = await HookedTransformer.fromPretrained(join(root, "models/stories260k"), {
    backend: opts.kernels,
  });
  try {
    const corpus = openCorpus(join(root, "models/stories260k-saes/stories-140k-seed0.jsonl"));
    const [x] = harvestActivations(model, tokenSequences(model, corpus.documents(), 512), {
      hooks: ["blocks.2.hook_resid_pre"],
      maxTokens: 40_000,
    });
    const steps = opts.steps ?? 40;
    const warm = 3;
    const s = defaultTrainSettings({
      architecture: "topk",
      dSae: 512,
      k: 8,
      batchSize: 4096,
      tokens: 4096 * 3000,
    });
    const data = { x, y: x };
    // Both float32 paths of the step, each from a fresh state: the default dense GEMMs, then the sparse loops.
    const timed = (dense: boolean) => {
      const state = initTrainState(data, s);
      const ops = FLOAT32_OPS(opts.kernels, { denseProducts: dense });
      trainSteps(state, data, s, { ops, untilStep: warm });
      const t0 = performance.now();
      const cpu0 = process.cpuUsage();
      trainSteps(state, data, s, { ops, untilStep: warm + steps });
      const seconds = (performance.now() - t0) / 1000;
      const cpu = process.cpuUsage(cpu0);
      // CPU time of the whole process (every thread), which a busy shared machine inflates far less than wall time.
      const cpuSeconds = (cpu.user + cpu.system) / 1e6;
      return { perS: (steps * s.batchSize) / seconds, perCpuS: (steps * s.batchSize) / cpuSeconds };
    };
    const dense = timed(true);
    const sparse = timed(false);
    return {
      sae_train_tokens_per_s: dense.perS,
      sae_train_tokens_per_cpu_s: dense.perCpuS,
      sae_train_sparse_tokens_per_s: sparse.perS,
      sae_train_sparse_tokens_per_cpu_s: sparse.perCpuS,
    };
  } finally {
    model.dispose();
  }
}
