import type { HookedTransformer } from "../src/model/hooked-transformer.ts";
import type { Kernels } from "../src/tensor/kernels.ts";
import { mulberry32 } from "../src/util/random.ts";
import { medianMs } from "./gpt2-small.ts";

/** GFLOP/s of y = x @ W for x [128 x 768], W [768 x 3072] on the given kernels. */
export function benchGemm(kernels: Kernels, rows = 128, inDim = 768, outDim = 3072): number {
  const rng = mulberry32(1);
  const W = Float32Array.from({ length: inDim * outDim }, () => rng() - 0.5);
  const x = Float32Array.from({ length: rows * inDim }, () => rng() - 0.5);
  const op = kernels.linear(W, inDim, outDim, null);
  const runs = kernels.name === "reference" ? 3 : 30;
  const ms = medianMs(() => op.forward(x, rows), runs, 2);
  op.dispose();
  return (2 * rows * inDim * outDim) / (ms * 1e6);
}

export interface ForwardBench {
  forward_1x8_ms: number;
  forward_8x8_ms: number;
  forward_1x128_ms: number;
  forward_8x128_ms: number;
}

/** Median ms of a full forward (logits at every position) on batch x positions random tokens, over n runs. */
export function forwardTimer(
  model: HookedTransformer,
  seed: number,
): (b: number, p: number, n: number) => number {
  const rng = mulberry32(seed);
  return (b, p, n) => {
    const t = Array.from({ length: b }, () =>
      Array.from({ length: p }, () => Math.floor(rng() * model.cfg.dVocab)),
    );
    return medianMs(() => model.run(t), n, 1);
  };
}

/** Full forward latency at the shapes the docs quote. */
export function benchForward(model: HookedTransformer, runs = 5): ForwardBench {
  const time = forwardTimer(model, 2);
  return {
    forward_1x8_ms: time(1, 8, runs * 4),
    forward_8x8_ms: time(8, 8, runs * 2),
    forward_1x128_ms: time(1, 128, runs),
    forward_8x128_ms: time(8, 128, Math.max(3, Math.ceil(runs / 2))),
  };
}
