/**
 * Random GPT-NeoX checkpoints for tests: parallel and sequential residual, partial rotary (a quarter and a
 * half of each head; all of it), GELU and its tanh form, F32/F16/BF16 storage. Vocabulary 512 (the
 * bundled tokenizer's).
 */
import { join } from "node:path";
import { makeRandomCheckpoint } from "../../src/weights/checkpoint.ts";
import type { ModelConfig } from "../../src/weights/config.ts";
import { parseHfConfig } from "../../src/weights/families/index.ts";
import type { SafetensorsWriteDtype } from "../../src/weights/safetensors.ts";

export const NEOX_BASE_CONFIG = {
  model_type: "gpt_neox",
  hidden_size: 64,
  intermediate_size: 96,
  num_hidden_layers: 2,
  num_attention_heads: 4,
  vocab_size: 512,
  max_position_embeddings: 64,
  layer_norm_eps: 1e-5,
  rotary_pct: 0.25,
  rotary_emb_base: 10000,
  use_parallel_residual: true,
  hidden_act: "gelu",
};

export interface NeoxVariant {
  name: string;
  json: Record<string, unknown>;
  dtype: SafetensorsWriteDtype;
}

export const NEOX_VARIANTS: NeoxVariant[] = [
  {
    name: "gpt_neox, parallel residual, rotary_pct 0.25 (Pythia), F32",
    json: NEOX_BASE_CONFIG,
    dtype: "F32",
  },
  {
    name: "gpt_neox, sequential residual, rotary_pct 0.5, base 1000, F16",
    json: { ...NEOX_BASE_CONFIG, use_parallel_residual: false, rotary_pct: 0.5, rotary_emb_base: 1000 },
    dtype: "F16",
  },
  {
    name: "gpt_neox, parallel, full rotary, gelu_new, 3 layers, BF16",
    json: { ...NEOX_BASE_CONFIG, rotary_pct: 1, hidden_act: "gelu_new", num_hidden_layers: 3 },
    dtype: "BF16",
  },
];

/** Writes variant `i` under `root` (seeded; std 0.2 so activations are far from zero). */
export function makeNeoxCheckpoint(root: string, i: number): { dir: string; config: ModelConfig } {
  const v = NEOX_VARIANTS[i];
  const config = parseHfConfig(v.json, v.name);
  const dir = join(root, `neox-${i}`);
  makeRandomCheckpoint(dir, config, { seed: 40 + i, dtype: v.dtype, std: 0.2 });
  return { dir, config };
}
