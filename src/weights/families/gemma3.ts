/**
 * The Gemma 3 text family (`model_type: gemma3_text`, Hugging Face `Gemma3ForCausalLM`): Gemma 2's block
 * (gemma2.ts: (1 + w) RMSNorms before and after attention and the MLP, GeGLU, embedding scale,
 * query_pre_attn_scalar, sliding and full layers, tied embeddings) plus
 *   - QK-norm: `self_attn.q_norm` / `k_norm`, a (1 + w) RMSNorm over each head's q and k (d_head wide),
 *     after the projection and before the rotation;
 *   - a rotary base per layer type: rope_local_base_freq (10,000) on sliding layers, rope_theta
 *     (1,000,000) with any linear rope_scaling on full ones;
 *   - layers sliding except every sliding_window_pattern-th (5 local : 1 global), or `layer_types`;
 *   - no soft-caps by default (attn_logit_softcapping and final_logit_softcapping null).
 */
import type { BlockWeights } from "../canonical-weights.ts";
import type { ConfigReader, ModelConfig } from "../config.ts";
import type { ModelFamily, TensorSource } from "./family.ts";
import {
  type GemmaGeneration,
  gemma2Family,
  gemmaConfigJson,
  gemmaNorm,
  parseGemmaConfig,
} from "./gemma2.ts";
import { parseRopeScaling, ropeScalingJson } from "./llama.ts";

/** Gemma3TextConfig's defaults, taken when a key is absent. */
export const GEMMA3_DEFAULTS = {
  vocab_size: 262208,
  hidden_size: 2304,
  intermediate_size: 9216,
  num_hidden_layers: 26,
  num_attention_heads: 8,
  num_key_value_heads: 4,
  head_dim: 256,
  max_position_embeddings: 131072,
  rms_norm_eps: 1e-6,
  rope_theta: 1_000_000,
  query_pre_attn_scalar: 256,
  sliding_window: 4096,
  final_logit_softcapping: null,
  attn_logit_softcapping: null,
  rope_local_base_freq: 10_000,
  sliding_window_pattern: 6,
} as const;

const GEMMA3: GemmaGeneration = {
  label: "Gemma 3",
  defaults: GEMMA3_DEFAULTS,
  // Gemma3TextConfig: sliding unless (i + 1) is a multiple of sliding_window_pattern.
  sliding: (i, r) =>
    (i + 1) % r.positiveInt("sliding_window_pattern", GEMMA3_DEFAULTS.sliding_window_pattern) !== 0,
};

export const gemma3Family: ModelFamily = {
  label: "Gemma 3",
  needsTokenizerFile: true,
  optionalPrefix: null,

  parseConfig(r: ConfigReader): ModelConfig {
    if (r.json.rope_parameters != null && r.json.rope_scaling == null) {
      throw r.bad(
        "rope_parameters",
        "is set: Gemma 3 is read from rope_theta, rope_local_base_freq and rope_scaling (transformers < 5 " +
          "configs) — use the checkpoint's config.json as published",
      );
    }
    const c = parseGemmaConfig(r, GEMMA3);
    const scaling = parseRopeScaling(r);
    if (scaling && scaling.type !== "linear") {
      throw r.bad("rope_scaling", `is ${scaling.type}; Gemma 3 is supported with linear rotary scaling only`);
    }
    const theta = r.positiveNumber("rope_theta", GEMMA3_DEFAULTS.rope_theta);
    return {
      ...c,
      modelType: "gemma3_text",
      rotary: { theta, dim: c.dHead, scaling },
      rotaryLocal: {
        theta: r.positiveNumber("rope_local_base_freq", GEMMA3_DEFAULTS.rope_local_base_freq),
        dim: c.dHead,
        scaling: null,
      },
      qkNorm: true,
    };
  },

  toConfigJson(c: ModelConfig): Record<string, unknown> {
    return {
      model_type: "gemma3_text",
      architectures: ["Gemma3ForCausalLM"],
      ...gemmaConfigJson(c),
      rope_theta: c.rotary?.theta ?? GEMMA3_DEFAULTS.rope_theta,
      rope_local_base_freq: c.rotaryLocal?.theta ?? GEMMA3_DEFAULTS.rope_local_base_freq,
      rope_scaling: ropeScalingJson(c.rotary?.scaling ?? null),
    };
  },

  /** Gemma 2's tensors plus each layer's q_norm and k_norm gains [d_head]. */
  expectedTensors(c: ModelConfig): Map<string, number[]> {
    const shapes = gemma2Family.expectedTensors(c);
    for (let l = 0; l < c.nLayers; l++)
      for (const n of ["q_norm", "k_norm"]) shapes.set(`model.layers.${l}.self_attn.${n}.weight`, [c.dHead]);
    return shapes;
  },

  embeddingTensors: gemma2Family.embeddingTensors,

  convertBlock(src: TensorSource, c: ModelConfig, l: number): BlockWeights {
    const a = `model.layers.${l}.self_attn`;
    return {
      ...gemma2Family.convertBlock(src, c, l),
      qNorm: gemmaNorm(src, `${a}.q_norm.weight`),
      kNorm: gemmaNorm(src, `${a}.k_norm.weight`),
    };
  },

  convertHead: gemma2Family.convertHead,
};

/**
 * Text shapes of published Gemma 3 checkpoints (their config.json fields that differ from the defaults),
 * for random checkpoints and the shapes bench.
 */
export const GEMMA3_SHAPES: Record<string, Record<string, unknown>> = {
  "gemma-3-270m": {
    hidden_size: 640,
    intermediate_size: 2048,
    num_hidden_layers: 18,
    num_attention_heads: 4,
    num_key_value_heads: 1,
    head_dim: 256,
    vocab_size: 262144,
    max_position_embeddings: 32768,
    sliding_window: 512,
  },
  "gemma-3-1b": {
    hidden_size: 1152,
    intermediate_size: 6912,
    num_hidden_layers: 26,
    num_attention_heads: 4,
    num_key_value_heads: 1,
    head_dim: 256,
    vocab_size: 262144,
    max_position_embeddings: 32768,
    sliding_window: 512,
  },
};

/** A Gemma 3 shape's config.json (`GEMMA3_SHAPES`), for random checkpoints. */
export function gemma3ConfigJson(name: keyof typeof GEMMA3_SHAPES): Record<string, unknown> {
  return {
    model_type: "gemma3_text",
    architectures: ["Gemma3ForCausalLM"],
    hidden_activation: "gelu_pytorch_tanh",
    tie_word_embeddings: true,
    ...GEMMA3_SHAPES[name],
  };
}
