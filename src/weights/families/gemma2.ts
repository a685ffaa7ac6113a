/**
 * The Gemma 2 family: Hugging Face `Gemma2ForCausalLM` names and config fields → canonical weights.
 * RMSNorm with a (1 + weight) gain, norms before and after attention and the MLP, a GeGLU MLP
 * (`gelu_pytorch_tanh`), embeddings scaled by sqrt(d_model), scores scaled by query_pre_attn_scalar^-0.5,
 * attention-logit and final-logit soft-capping, sliding-window and global layers alternating (the first
 * sliding), grouped-query attention and tied embeddings.
 *
 * The canonical gain of each norm is the effective one, 1 + weight (computed in float32, as Gemma2RMSNorm
 * does), as TransformerLens stores it: every pass, and folding it into the weights that read it, then
 * treat Gemma's norms as plain RMSNorms.
 */
import { Tensor } from "../../tensor/tensor.ts";
import { type BlockWeights, type LayerNormParams, transpose2d } from "../canonical-weights.ts";
import type { ConfigReader, ModelConfig } from "../config.ts";
import type { HeadWeights, ModelFamily, TensorSource } from "./family.ts";
import { rmsDecoderShapeJson } from "./llama.ts";
import { takePerHead, takeVector, takeTransposed as transposed } from "./take.ts";

/** Gemma2Config's defaults (those of gemma-2-2b), taken when a key is absent. */
export const GEMMA2_DEFAULTS = {
  vocab_size: 256000,
  hidden_size: 2304,
  intermediate_size: 9216,
  num_hidden_layers: 26,
  num_attention_heads: 8,
  num_key_value_heads: 4,
  head_dim: 256,
  max_position_embeddings: 8192,
  rms_norm_eps: 1e-6,
  rope_theta: 10000,
  query_pre_attn_scalar: 256,
  sliding_window: 4096,
  final_logit_softcapping: 30,
  attn_logit_softcapping: 50,
} as const;

/** The activations Gemma 2 checkpoints name (`hidden_activation`; old configs `hidden_act`): the tanh GELU. */
const TANH_GELU = ["gelu_pytorch_tanh", "gelu_new"];

/** An optional positive number: null (or absent with a null default) switches the feature off. */
function capOrNull(r: ConfigReader, field: string, fallback: number | null): number | null {
  if (r.json[field] === null || (r.json[field] === undefined && fallback === null)) return null;
  return r.positiveNumber(field, fallback ?? 0);
}

/** Hugging Face's layer_types, or its default `sliding(i)` for layer i. */
function parseLayerTypes(
  r: ConfigReader,
  nLayers: number,
  sliding: (layer: number) => boolean,
): ("sliding" | "full")[] {
  const raw = r.json.layer_types;
  if (raw == null) return Array.from({ length: nLayers }, (_, i) => (sliding(i) ? "sliding" : "full"));
  if (!Array.isArray(raw) || raw.length !== nLayers)
    throw r.bad("layer_types", `must list one type per layer (${nLayers}), got ${JSON.stringify(raw)}`);
  return raw.map((t) => {
    if (t === "sliding_attention") return "sliding";
    if (t === "full_attention") return "full";
    throw r.bad(
      "layer_types",
      `holds ${JSON.stringify(t)}; each must be "sliding_attention" or "full_attention"`,
    );
  });
}

/** What a Gemma generation's config reader is given: its name, defaults and default layer pattern. */
export interface GemmaGeneration {
  label: string;
  /** The config class's defaults, taken when a key is absent (null: off unless the config sets it). */
  defaults: {
    vocab_size: number;
    hidden_size: number;
    intermediate_size: number;
    num_hidden_layers: number;
    num_attention_heads: number;
    num_key_value_heads: number;
    head_dim: number;
    max_position_embeddings: number;
    rms_norm_eps: number;
    rope_theta: number;
    query_pre_attn_scalar: number;
    sliding_window: number;
    final_logit_softcapping: number | null;
    attn_logit_softcapping: number | null;
  };
  /** Whether layer i is sliding when the config has no layer_types. */
  sliding: (layer: number, r: ConfigReader) => boolean;
}

/**
 * What Gemma 2 and Gemma 3 configs share: shape, tanh-GELU GeGLU, (1 + w) RMSNorms before and after
 * attention and the MLP, embedding scale, query_pre_attn_scalar, soft-caps, sliding and full layers. A
 * generation's reader adds what differs (Gemma 3: rotary bases per layer type, QK-norm).
 */
export function parseGemmaConfig(r: ConfigReader, g: GemmaGeneration): ModelConfig {
  const d = g.defaults;
  const nLayers = r.positiveInt("num_hidden_layers", d.num_hidden_layers);
  const nHeads = r.positiveInt("num_attention_heads", d.num_attention_heads);
  const dModel = r.positiveInt("hidden_size", d.hidden_size);
  const nKvHeads = r.positiveInt("num_key_value_heads", d.num_key_value_heads);
  if (nHeads % nKvHeads !== 0) {
    throw r.bad(
      "num_key_value_heads",
      `(${nKvHeads}) must divide num_attention_heads (${nHeads}): each key/value head serves a whole group of query heads`,
    );
  }
  const actField = r.json.hidden_activation != null ? "hidden_activation" : "hidden_act";
  const actName = r.json[actField] ?? "gelu_pytorch_tanh";
  if (typeof actName !== "string" || !TANH_GELU.includes(actName)) {
    throw r.bad(
      actField,
      `is ${JSON.stringify(actName)}; ${g.label} is supported with the tanh GELU (${TANH_GELU.join(", ")})`,
    );
  }
  if (r.json.attention_bias === true) {
    throw r.bad(
      "attention_bias",
      `is true: ${g.label} with attention biases is not supported — use a checkpoint without them`,
    );
  }
  const dHead = r.positiveInt("head_dim", d.head_dim);
  const slidingWindow =
    r.json.sliding_window === null ? null : r.positiveInt("sliding_window", d.sliding_window);
  return {
    nLayers,
    nHeads,
    dModel,
    dHead,
    dMlp: r.positiveInt("intermediate_size", d.intermediate_size),
    nCtx: r.positiveInt("max_position_embeddings", d.max_position_embeddings),
    dVocab: r.positiveInt("vocab_size", d.vocab_size),
    lnEps: r.positiveNumber("rms_norm_eps", d.rms_norm_eps),
    act: "gelu_new",
    modelType: "gemma2",
    normalization: "rmsnorm",
    positions: "rotary",
    rotary: { theta: r.positiveNumber("rope_theta", d.rope_theta), dim: dHead, scaling: null },
    nKvHeads,
    qkvBias: false,
    outBias: false,
    gatedMlp: true,
    mlpBias: false,
    tiedEmbeddings: r.bool("tie_word_embeddings", true),
    slidingWindow,
    layerTypes: parseLayerTypes(r, nLayers, (i) => g.sliding(i, r)),
    parallelResidual: false,
    // Gemma2Model multiplies by hidden_size**0.5 cast to the hidden states' dtype: float32 here.
    embedScale: Math.fround(Math.sqrt(dModel)),
    attnScale: r.positiveNumber("query_pre_attn_scalar", d.query_pre_attn_scalar) ** -0.5,
    attnSoftCap: capOrNull(r, "attn_logit_softcapping", d.attn_logit_softcapping),
    finalSoftCap: capOrNull(r, "final_logit_softcapping", d.final_logit_softcapping),
    postNorms: true,
  };
}

/** The config.json fields Gemma 2 and Gemma 3 share (the inverse of parseGemmaConfig). */
export function gemmaConfigJson(c: ModelConfig): Record<string, unknown> {
  return {
    ...rmsDecoderShapeJson(c),
    rope_theta: c.rotary?.theta ?? GEMMA2_DEFAULTS.rope_theta,
    hidden_activation: "gelu_pytorch_tanh",
    tie_word_embeddings: c.tiedEmbeddings,
    query_pre_attn_scalar: c.attnScale == null ? c.dHead : Math.round(c.attnScale ** -2 * 1e6) / 1e6,
    sliding_window: c.slidingWindow,
    layer_types: (c.layerTypes ?? []).map((t) => (t === "sliding" ? "sliding_attention" : "full_attention")),
    attn_logit_softcapping: c.attnSoftCap ?? null,
    final_logit_softcapping: c.finalSoftCap ?? null,
    attention_bias: false,
  };
}

const GEMMA2: GemmaGeneration = {
  label: "Gemma 2",
  defaults: GEMMA2_DEFAULTS,
  // Gemma2Config: sliding where (i + 1) % 2 is 1 (layers 0, 2, 4, ...).
  sliding: (i) => (i + 1) % 2 === 1,
};

export const gemma2Family: ModelFamily = {
  label: "Gemma 2",
  needsTokenizerFile: true,
  optionalPrefix: null,

  parseConfig(r: ConfigReader): ModelConfig {
    if (r.json.rope_scaling != null) {
      throw r.bad(
        "rope_scaling",
        "is set: rotary scaling is not supported for Gemma 2 — use a checkpoint without it",
      );
    }
    return parseGemmaConfig(r, GEMMA2);
  },

  toConfigJson(c: ModelConfig): Record<string, unknown> {
    return { model_type: "gemma2", architectures: ["Gemma2ForCausalLM"], ...gemmaConfigJson(c) };
  },

  /** torch.nn.Linear weights are [out, in]; no biases; four norms per layer. */
  expectedTensors(c: ModelConfig): Map<string, number[]> {
    const { dModel: D, dMlp, dVocab } = c;
    const shapes = new Map<string, number[]>([["model.embed_tokens.weight", [dVocab, D]]]);
    for (let l = 0; l < c.nLayers; l++) {
      const p = `model.layers.${l}`;
      for (const norm of NORMS) shapes.set(`${p}.${norm}.weight`, [D]);
      shapes.set(`${p}.self_attn.q_proj.weight`, [c.nHeads * c.dHead, D]);
      shapes.set(`${p}.self_attn.k_proj.weight`, [c.nKvHeads * c.dHead, D]);
      shapes.set(`${p}.self_attn.v_proj.weight`, [c.nKvHeads * c.dHead, D]);
      shapes.set(`${p}.self_attn.o_proj.weight`, [D, c.nHeads * c.dHead]);
      shapes.set(`${p}.mlp.gate_proj.weight`, [dMlp, D]);
      shapes.set(`${p}.mlp.up_proj.weight`, [dMlp, D]);
      shapes.set(`${p}.mlp.down_proj.weight`, [D, dMlp]);
    }
    shapes.set("model.norm.weight", [D]);
    if (!c.tiedEmbeddings) shapes.set("lm_head.weight", [dVocab, D]);
    return shapes;
  },

  embeddingTensors: () => ({ tokens: "model.embed_tokens.weight", positions: null }),

  convertBlock(src: TensorSource, c: ModelConfig, l: number): BlockWeights {
    const { dModel: D, dHead: dh, dMlp } = c;
    const perHead = (name: string, heads: number) => takePerHead(src, name, heads, D, dh);
    const p = `model.layers.${l}`;
    const a = `${p}.self_attn`;
    return {
      ln1: gemmaNorm(src, `${p}.input_layernorm.weight`),
      W_Q: perHead(`${a}.q_proj.weight`, c.nHeads),
      W_K: perHead(`${a}.k_proj.weight`, c.nKvHeads),
      W_V: perHead(`${a}.v_proj.weight`, c.nKvHeads),
      b_Q: Tensor.zeros([c.nHeads, dh]),
      b_K: Tensor.zeros([c.nKvHeads, dh]),
      b_V: Tensor.zeros([c.nKvHeads, dh]),
      W_O: transposed(src, `${a}.o_proj.weight`, D, c.nHeads * dh).reshape([c.nHeads, dh, D]),
      b_O: Tensor.zeros([D]),
      // Hugging Face's post_attention_layernorm is the norm *after* attention (TransformerLens' ln1_post);
      // pre_feedforward_layernorm is the one before the MLP (ln2).
      ln1Post: gemmaNorm(src, `${p}.post_attention_layernorm.weight`),
      ln2: gemmaNorm(src, `${p}.pre_feedforward_layernorm.weight`),
      ln2Post: gemmaNorm(src, `${p}.post_feedforward_layernorm.weight`),
      W_in: transposed(src, `${p}.mlp.up_proj.weight`, dMlp, D),
      W_gate: transposed(src, `${p}.mlp.gate_proj.weight`, dMlp, D),
      b_in: Tensor.zeros([dMlp]),
      W_out: transposed(src, `${p}.mlp.down_proj.weight`, D, dMlp),
      b_out: Tensor.zeros([D]),
    };
  },

  convertHead(src: TensorSource, c: ModelConfig, W_E: Tensor): HeadWeights {
    return {
      lnFinal: gemmaNorm(src, "model.norm.weight"),
      // The unembedding is the stored embedding's transpose: the sqrt(d_model) scale is on the input side only.
      W_U: c.tiedEmbeddings ? transpose2d(W_E) : transposed(src, "lm_head.weight", c.dVocab, c.dModel),
      b_U: Tensor.zeros([c.dVocab]),
    };
  },
};

const NORMS = [
  "input_layernorm",
  "post_attention_layernorm",
  "pre_feedforward_layernorm",
  "post_feedforward_layernorm",
];

/** Gemma2RMSNorm's effective gain 1 + weight (float32, as it computes it); no bias. */
export function gemmaNorm(src: TensorSource, name: string): LayerNormParams {
  const w = takeVector(src, name);
  const gain = new Float32Array(w.data.length);
  for (let i = 0; i < gain.length; i++) gain[i] = 1 + w.data[i];
  return { w: new Tensor(gain, w.shape), b: Tensor.zeros(w.shape) };
}

/** gemma-2-2b's config.json fields (the shape Gemma Scope's SAEs were trained on), for random checkpoints. */
export const GEMMA2_2B_CONFIG: Record<string, unknown> = {
  model_type: "gemma2",
  architectures: ["Gemma2ForCausalLM"],
  ...GEMMA2_DEFAULTS,
  hidden_activation: "gelu_pytorch_tanh",
  tie_word_embeddings: true,
};
