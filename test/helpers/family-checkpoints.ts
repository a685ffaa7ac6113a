/**
 * One small random checkpoint per model family (and per way a family's block differs), for the suites that
 * must hold on every family (test/families/). Adding a family is one line in FAMILY_CASES: its Hugging Face
 * config.json. Vocabulary 512 where the family reads the bundled SentencePiece tokenizer; GPT-2 keeps its
 * own BPE vocabulary (50257), which the tokenizer needs.
 */
import { join } from "node:path";
import { makeRandomCheckpoint } from "../../src/weights/checkpoint.ts";
import type { ModelConfig } from "../../src/weights/config.ts";
import { parseHfConfig } from "../../src/weights/families/index.ts";
import { GEMMA2_BASE_CONFIG } from "./gemma2-variants.ts";
import { GEMMA3_BASE_CONFIG } from "./gemma3-variants.ts";
import { LLAMA_BASE_CONFIG } from "./llama-variants.ts";
import { NEOX_BASE_CONFIG } from "./neox-variants.ts";

export interface FamilyCase {
  /** Test title, and (slugged) the checkpoint's folder name. */
  name: string;
  /** The checkpoint's config.json. */
  json: Record<string, unknown>;
}

const GPT2_CONFIG = {
  model_type: "gpt2",
  n_layer: 2,
  n_head: 4,
  n_embd: 32,
  n_inner: 48,
  n_positions: 64,
  vocab_size: 50257,
  layer_norm_epsilon: 1e-5,
  activation_function: "gelu_new",
};

export const FAMILY_CASES: FamilyCase[] = [
  { name: "gpt2", json: GPT2_CONFIG },
  { name: "llama (GQA 4/2, tied)", json: LLAMA_BASE_CONFIG },
  { name: "gpt-neox (parallel residual)", json: NEOX_BASE_CONFIG },
  { name: "gpt-neox (sequential residual)", json: { ...NEOX_BASE_CONFIG, use_parallel_residual: false } },
  { name: "gemma2 (post-norms, both soft-caps, sliding window)", json: GEMMA2_BASE_CONFIG },
  {
    name: "gemma3 (QK-norm, local and global rotary bases, rope_scaling, no soft-caps)",
    json: { ...GEMMA3_BASE_CONFIG, rope_scaling: { rope_type: "linear", factor: 4 } },
  },
];

/**
 * Writes case `i` under `root` (seeded, F32, std 0.2 so that activations are far from zero and patches move
 * the logits) and returns its directory and config.
 */
export function writeFamilyCheckpoint(root: string, i: number): { dir: string; config: ModelConfig } {
  const c = FAMILY_CASES[i];
  const config = parseHfConfig(c.json, c.name);
  const dir = join(root, `family-${i}`);
  makeRandomCheckpoint(dir, config, { seed: 60 + i, std: 0.2 });
  return { dir, config };
}
