import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { HookedTransformer, type LoadOptions } from "../src/model/hooked-transformer.ts";
import { makeRandomCheckpoint } from "../src/weights/checkpoint.ts";
import type { ModelConfig } from "../src/weights/config.ts";
import { gpt2Config } from "../src/weights/families/gpt2.ts";

/** GPT-2 small's shape (124M parameters). */
export const GPT2_SMALL_CONFIG: ModelConfig = gpt2Config({
  nLayers: 12,
  nHeads: 12,
  dModel: 768,
  dHead: 64,
  dMlp: 3072,
  nCtx: 1024,
  dVocab: 50257,
  lnEps: 1e-5,
  act: "gelu_new",
});

/**
 * A model of GPT-2 small's shape with seeded random weights. The checkpoint is written to a temp dir
 * (makeRandomCheckpoint's job) and removed; its returned float32 values are what was written, so they
 * are used directly instead of reading 500 MB back.
 */
export function randomGpt2Small(opts: LoadOptions & { seed?: number } = {}): HookedTransformer {
  const dir = mkdtempSync(join(tmpdir(), "circuitscope-bench-"));
  try {
    const tensors = makeRandomCheckpoint(dir, GPT2_SMALL_CONFIG, { seed: opts.seed ?? 1 });
    return HookedTransformer.fromCheckpoint({ config: GPT2_SMALL_CONFIG, tensors, dir }, opts);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Median wall time in ms of `fn` over `runs` runs after `warmup` runs. */
export function medianMs(fn: () => void, runs: number, warmup = 1): number {
  for (let i = 0; i < warmup; i++) fn();
  const times: number[] = [];
  for (let i = 0; i < runs; i++) {
    const t0 = performance.now();
    fn();
    times.push(performance.now() - t0);
  }
  times.sort((a, b) => a - b);
  return times[Math.floor(times.length / 2)];
}

export function peakRssMb(): number {
  return process.resourceUsage().maxRSS / 1024;
}
