/** Forward latency of a Llama-family model of SmolLM-135M's shape with seeded random weights. */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { HookedTransformer } from "../src/model/hooked-transformer.ts";
import type { Kernels } from "../src/tensor/kernels.ts";
import { makeRandomCheckpoint } from "../src/weights/checkpoint.ts";
import { parseHfConfig } from "../src/weights/families/index.ts";
import { forwardTimer } from "./engine.ts";
import { peakRssMb } from "./gpt2-small.ts";

/** SmolLM-135M's config.json fields that set its shape (GQA 9/3 heads, tied embeddings). */
export const SMOLLM_135M_CONFIG = parseHfConfig(
  {
    model_type: "llama",
    hidden_size: 576,
    intermediate_size: 1536,
    num_hidden_layers: 30,
    num_attention_heads: 9,
    num_key_value_heads: 3,
    vocab_size: 49152,
    max_position_embeddings: 2048,
    rms_norm_eps: 1e-5,
    rope_theta: 10000,
    tie_word_embeddings: true,
  },
  "SmolLM-135M shape",
);

export interface LlamaForwardBench {
  llama_forward_1x8_ms: number;
  llama_forward_8x128_ms: number;
  /** The process's peak resident memory once the model is built and has run 8x128. */
  llama_peak_rss_mb: number;
}

/** Builds the model (written to a temp dir and removed, as randomGpt2Small does), times it, disposes it. */
export function benchLlamaForward(kernels: Kernels, runs = 5): LlamaForwardBench {
  const dir = mkdtempSync(join(tmpdir(), "circuitscope-bench-llama-"));
  let model: HookedTransformer;
  try {
    const tensors = makeRandomCheckpoint(dir, SMOLLM_135M_CONFIG, { seed: 1 });
    model = HookedTransformer.fromCheckpoint(
      { config: SMOLLM_135M_CONFIG, tensors, dir },
      { backend: kernels },
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  try {
    const time = forwardTimer(model, 3);
    return {
      llama_forward_1x8_ms: time(1, 8, runs * 4),
      llama_forward_8x128_ms: time(8, 128, Math.max(3, Math.ceil(runs / 2))),
      llama_peak_rss_mb: peakRssMb(),
    };
  } finally {
    model.dispose();
  }
}
