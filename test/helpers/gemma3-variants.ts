/**
 * Random Gemma 3 text checkpoints for tests: QK-norm, local and global rotary bases (10,000 and 1,000,000),
 * a short sliding window (3) with the default-style pattern (sliding_window_pattern 3: layers 0, 1 sliding,
 * 2 full) or explicit layer_types, linear rope_scaling on full layers, soft-caps off (Gemma 3's default) or
 * set, grouped-query heads, head_dim ≠ d_model / n_heads, F32/F16/BF16. Vocabulary 512 (the bundled
 * tokenizer's).
 */
import { join } from "node:path";
import type { ModelConfig } from "../../src/weights/config.ts";
import { type Gemma2Variant, writeVariant } from "./gemma2-variants.ts";

export const GEMMA3_BASE_CONFIG = {
  model_type: "gemma3_text",
  hidden_size: 64,
  intermediate_size: 96,
  num_hidden_layers: 3,
  num_attention_heads: 4,
  num_key_value_heads: 2,
  head_dim: 24,
  vocab_size: 512,
  max_position_embeddings: 64,
  rms_norm_eps: 1e-6,
  rope_theta: 1_000_000,
  rope_local_base_freq: 10_000,
  query_pre_attn_scalar: 20,
  sliding_window: 3,
  sliding_window_pattern: 3,
  hidden_activation: "gelu_pytorch_tanh",
  tie_word_embeddings: true,
};

export const GEMMA3_VARIANTS: Gemma2Variant[] = [
  { name: "gemma3, pattern 3, window 3, no soft-caps, tied, F32", json: GEMMA3_BASE_CONFIG, dtype: "F32" },
  {
    name: "gemma3, layer_types (full, sliding, full), linear rope_scaling 4, final soft-cap, F16",
    json: {
      ...GEMMA3_BASE_CONFIG,
      layer_types: ["full_attention", "sliding_attention", "full_attention"],
      rope_scaling: { rope_type: "linear", factor: 4 },
      final_logit_softcapping: 3,
    },
    dtype: "F16",
  },
  {
    name: "gemma3, attention soft-cap, untied, BF16",
    json: { ...GEMMA3_BASE_CONFIG, attn_logit_softcapping: 4, tie_word_embeddings: false },
    dtype: "BF16",
  },
];

/** Writes variant `i` under `root` (seeded; std 0.2 so activations are far from zero). */
export function makeGemma3Checkpoint(root: string, i: number): { dir: string; config: ModelConfig } {
  return writeVariant(join(root, `gemma3-${i}`), GEMMA3_VARIANTS[i], 70 + i);
}
