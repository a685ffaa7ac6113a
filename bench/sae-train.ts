/**
 * `sae_train_tokens_per_s`: TopK SAE training steps (d_in 64, d_sae 512, k 8, batches of 4,096) on
 * stories260k's blocks.2.hook_resid_pre activations of the bundled sampled corpus, as issue 29 sets it.
 * The harvest is not timed; 10 steps warm up first. Wall time and the process's CPU time are both reported,
 * for the default step (one onnxruntime graph, graph-step.ts), for it with AuxK at work (every 50th latent
 * counted dead: 11 of 512, k_aux 11), and for the TypeScript loops it replaced: with dense GEMMs
 * (`sae_train_loops_*`) and sparse (`sae_train_sparse_*`); and the BatchTopK and JumpReLU graphs' tokens/s.
 */
import { join } from "node:path";
import { openCorpus } from "../src/corpus/sources.ts";
import { HookedTransformer } from "../src/model/hooked-transformer.ts";
import { harvestActivations, tokenSequences } from "../src/sae-train/harvest.ts";
import type { TrainArchitecture } from "../src/sae-train/sae-loss.ts";
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
    const warm = 10;
    const settings = (architecture: TrainArchitecture) =>
      defaultTrainSettings({ architecture, dSae: 512, k: 8, batchSize: 4096, tokens: 4096 * 3000 });
    const data = { x, y: x };
    // Each float32 path of the step from a fresh state.
    const timed = (options: {
      denseProducts?: boolean;
      graph?: boolean;
      dead?: boolean;
      architecture?: TrainArchitecture;
    }) => {
      const s = settings(options.architecture ?? "topk");
      const state = initTrainState(data, s);
      const ops = FLOAT32_OPS(opts.kernels, options);
      if (options.dead) for (let j = 1; j < s.dSae; j += 50) state.sinceFired[j] = 1e9;
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
    const graph = timed({});
    const auxK = timed({ dead: true });
    const dense = timed({ graph: false, denseProducts: true });
    const sparse = timed({ graph: false, denseProducts: false });
    // The other architectures' graphs (same widths; JumpReLU from its initial threshold 0.001, so early steps
    // with many latents active; BatchTopK k·B = 32,768 over the whole batch).
    const batchTopK = timed({ architecture: "batchtopk" });
    const jumpRelu = timed({ architecture: "jumprelu" });
    return {
      sae_train_tokens_per_s: graph.perS,
      sae_train_tokens_per_cpu_s: graph.perCpuS,
      sae_train_auxk_tokens_per_s: auxK.perS,
      sae_train_auxk_tokens_per_cpu_s: auxK.perCpuS,
      sae_train_loops_tokens_per_s: dense.perS,
      sae_train_loops_tokens_per_cpu_s: dense.perCpuS,
      sae_train_sparse_tokens_per_s: sparse.perS,
      sae_train_sparse_tokens_per_cpu_s: sparse.perCpuS,
      sae_train_batchtopk_tokens_per_s: batchTopK.perS,
      sae_train_batchtopk_tokens_per_cpu_s: batchTopK.perCpuS,
      sae_train_jumprelu_tokens_per_s: jumpRelu.perS,
      sae_train_jumprelu_tokens_per_cpu_s: jumpRelu.perCpuS,
    };
  } finally {
    model.dispose();
  }
}
