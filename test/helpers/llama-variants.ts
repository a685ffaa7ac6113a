/**
 * Random checkpoints of every Llama-family variant the engine supports, for tests: GQA, one key/value
 * head, Qwen2 biases, tied and untied unembedding, head_dim ≠ d_model / n_heads, llama3 and linear rope
 * scaling, Mistral's sliding window, F16/BF16 storage. Vocabulary 512 (the bundled tokenizer's).
 */
import { join } from "node:path";
import { makeRandomCheckpoint } from "../../src/weights/checkpoint.ts";
import type { ModelConfig } from "../../src/weights/config.ts";
import { parseHfConfig } from "../../src/weights/families/index.ts";
import type { SafetensorsWriteDtype } from "../../src/weights/safetensors.ts";

export const LLAMA_BASE_CONFIG = {
  model_type: "llama",
  hidden_size: 32,
  intermediate_size: 48,
  num_hidden_layers: 2,
  num_attention_heads: 4,
  num_key_value_heads: 2,
  vocab_size: 512,
  max_position_embeddings: 64,
  rms_norm_eps: 1e-5,
  tie_word_embeddings: true,
};

export interface LlamaVariant {
  name: string;
  json: Record<string, unknown>;
  dtype: SafetensorsWriteDtype;
}

export const LLAMA_VARIANTS: LlamaVariant[] = [
  { name: "llama, GQA 4/2, tied, F16 storage", json: LLAMA_BASE_CONFIG, dtype: "F16" },
  {
    name: "llama, untied, head_dim 12, llama3 rope scaling, attention biases",
    json: {
      ...LLAMA_BASE_CONFIG,
      hidden_size: 40,
      head_dim: 12,
      tie_word_embeddings: false,
      attention_bias: true,
      rope_theta: 500000,
      rope_scaling: {
        rope_type: "llama3",
        factor: 8,
        low_freq_factor: 1,
        high_freq_factor: 4,
        original_max_position_embeddings: 16,
      },
    },
    dtype: "F32",
  },
  {
    name: "qwen2, q/k/v biases, one key/value head, untied, BF16 storage",
    json: { ...LLAMA_BASE_CONFIG, model_type: "qwen2", num_key_value_heads: 1, tie_word_embeddings: false },
    dtype: "BF16",
  },
  {
    name: "mistral, sliding window 4, linear rope scaling",
    json: {
      ...LLAMA_BASE_CONFIG,
      model_type: "mistral",
      sliding_window: 4,
      rope_scaling: { type: "linear", factor: 2 },
    },
    dtype: "F32",
  },
];

/** Writes variant `i` under `root` (seeded, std 0.2 so activations are far from zero). */
export function makeVariantCheckpoint(root: string, i: number): { dir: string; config: ModelConfig } {
  const v = LLAMA_VARIANTS[i];
  const config = parseHfConfig(v.json, v.name);
  const dir = join(root, `variant-${i}`);
  makeRandomCheckpoint(dir, config, { seed: 10 + i, dtype: v.dtype, std: 0.2 });
  return { dir, config };
}
