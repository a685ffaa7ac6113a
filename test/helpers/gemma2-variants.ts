/**
 * Random Gemma 2 checkpoints for tests: a short sliding window (3) so the alternating local and global
 * layers differ on short prompts, head_dim ≠ d_model / n_heads, grouped-query heads, both soft-caps set
 * low enough to bend the values (or off), query_pre_attn_scalar ≠ head_dim, F32/F16/BF16 storage.
 * Vocabulary 512 (the bundled tokenizer's).
 */
import { join } from "node:path";
import { makeRandomCheckpoint } from "../../src/weights/checkpoint.ts";
import type { ModelConfig } from "../../src/weights/config.ts";
import { parseHfConfig } from "../../src/weights/families/index.ts";
import type { SafetensorsWriteDtype } from "../../src/weights/safetensors.ts";

export const GEMMA2_BASE_CONFIG = {
  model_type: "gemma2",
  hidden_size: 64,
  intermediate_size: 96,
  num_hidden_layers: 3,
  num_attention_heads: 4,
  num_key_value_heads: 2,
  head_dim: 24,
  vocab_size: 512,
  max_position_embeddings: 64,
  rms_norm_eps: 1e-6,
  rope_theta: 10000,
  query_pre_attn_scalar: 20,
  sliding_window: 3,
  attn_logit_softcapping: 4,
  final_logit_softcapping: 3,
  hidden_activation: "gelu_pytorch_tanh",
  tie_word_embeddings: true,
};

/** A named config.json and storage type (Gemma 2 or Gemma 3). */
export interface Gemma2Variant {
  name: string;
  json: Record<string, unknown>;
  dtype: SafetensorsWriteDtype;
}

export const GEMMA2_VARIANTS: Gemma2Variant[] = [
  { name: "gemma2, window 3, both soft-caps, tied, F32", json: GEMMA2_BASE_CONFIG, dtype: "F32" },
  {
    name: "gemma2, no soft-caps, window 2, F16",
    json: {
      ...GEMMA2_BASE_CONFIG,
      attn_logit_softcapping: null,
      final_logit_softcapping: null,
      sliding_window: 2,
    },
    dtype: "F16",
  },
  {
    name: "gemma2, explicit layer_types (full, sliding, sliding), untied, BF16",
    json: {
      ...GEMMA2_BASE_CONFIG,
      layer_types: ["full_attention", "sliding_attention", "sliding_attention"],
      tie_word_embeddings: false,
    },
    dtype: "BF16",
  },
];

/** Writes variant `i` under `root` (seeded; std 0.2 so activations are far from zero). */
export function makeGemma2Checkpoint(root: string, i: number): { dir: string; config: ModelConfig } {
  return writeVariant(join(root, `gemma2-${i}`), GEMMA2_VARIANTS[i], 60 + i);
}

/** A Gemma variant's random checkpoint in `dir` (seeded; std 0.2), and its config. */
export function writeVariant(
  dir: string,
  v: Gemma2Variant,
  seed: number,
): { dir: string; config: ModelConfig } {
  const config = parseHfConfig(v.json, v.name);
  makeRandomCheckpoint(dir, config, { seed, dtype: v.dtype, std: 0.2 });
  return { dir, config };
}
