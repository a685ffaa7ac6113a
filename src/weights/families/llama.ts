/**
 * The Llama family (Llama 1-3, TinyLlama, SmolLM; Mistral; Qwen2): Hugging Face `LlamaForCausalLM`-style
 * names and config fields → canonical weights. The three differ only in config fields (biases, window).
 */
import { Tensor } from "../../tensor/tensor.ts";
import { type BlockWeights, type LayerNormParams, transpose2d } from "../canonical-weights.ts";
import type { ConfigReader, ModelConfig, ModelType, RopeScaling } from "../config.ts";
import type { HeadWeights, ModelFamily, TensorSource } from "./family.ts";
import { takePerHead, takeTransposed as transposed } from "./take.ts";

const ROPE_TYPES = ["default", "linear", "llama3"];

export function parseRopeScaling(r: ConfigReader): RopeScaling | null {
  // transformers < 4.56 writes rope_scaling; later versions write rope_parameters (with rope_theta inside).
  const field = r.json.rope_scaling != null ? "rope_scaling" : "rope_parameters";
  const raw = r.json[field];
  if (raw == null) return null;
  if (typeof raw !== "object" || Array.isArray(raw)) throw r.bad(field, "must be an object or null");
  const o = raw as Record<string, unknown>;
  const type = o.rope_type ?? o.type ?? "default";
  const num = (key: string, fallback?: number) => {
    const v = o[key] ?? fallback;
    if (typeof v !== "number" || !(v > 0)) {
      throw r.bad(`${field}.${key}`, `must be a positive number, got ${JSON.stringify(v)}`);
    }
    return v;
  };
  if (type === "default") return null;
  if (type === "linear") return { type, factor: num("factor") };
  if (type === "llama3") {
    return {
      type,
      factor: num("factor"),
      lowFreqFactor: num("low_freq_factor"),
      highFreqFactor: num("high_freq_factor"),
      originalMaxPositions: num("original_max_position_embeddings"),
    };
  }
  throw r.bad(
    `${field}.rope_type`,
    `is ${JSON.stringify(type)}; supported rotary scalings: ${ROPE_TYPES.join(", ")}`,
  );
}

export function ropeScalingJson(s: RopeScaling | null): Record<string, unknown> | null {
  if (!s) return null;
  if (s.type === "linear") return { rope_type: "linear", factor: s.factor };
  return {
    rope_type: "llama3",
    factor: s.factor,
    low_freq_factor: s.lowFreqFactor,
    high_freq_factor: s.highFreqFactor,
    original_max_position_embeddings: s.originalMaxPositions,
  };
}

const MISTRAL_DEFAULT_WINDOW = 4096;

/**
 * Key/value heads when the config does not say, as Hugging Face's config classes decide: LlamaConfig
 * uses num_attention_heads, but MistralConfig's default is 8 and Qwen2Config's 32 (only an explicit null
 * means num_attention_heads there).
 */
function absentKvHeads(r: ConfigReader, modelType: ModelType, nHeads: number): number {
  if (r.json.num_key_value_heads === null || modelType === "llama") return nHeads;
  return modelType === "mistral" ? 8 : 32;
}

/**
 * The shape fields a Llama-style config.json (Llama, Mistral, Qwen2, Gemma 2 and 3) writes alike: widths,
 * layers, heads, key/value heads, head_dim, vocabulary, context and the RMSNorm epsilon.
 */
export function rmsDecoderShapeJson(c: ModelConfig): Record<string, unknown> {
  return {
    hidden_size: c.dModel,
    intermediate_size: c.dMlp,
    num_hidden_layers: c.nLayers,
    num_attention_heads: c.nHeads,
    num_key_value_heads: c.nKvHeads,
    head_dim: c.dHead,
    vocab_size: c.dVocab,
    max_position_embeddings: c.nCtx,
    rms_norm_eps: c.lnEps,
  };
}

export const llamaFamily: ModelFamily = {
  label: "Llama",
  needsTokenizerFile: true,
  optionalPrefix: null,

  parseConfig(r: ConfigReader, modelType: ModelType): ModelConfig {
    const nLayers = r.positiveInt("num_hidden_layers");
    const nHeads = r.positiveInt("num_attention_heads");
    const dModel = r.positiveInt("hidden_size");
    const dVocab = r.positiveInt("vocab_size");
    const nCtx = r.positiveInt("max_position_embeddings");
    const dMlp = r.positiveInt("intermediate_size");
    const nKvHeads = r.positiveInt("num_key_value_heads", absentKvHeads(r, modelType, nHeads));
    if (nHeads % nKvHeads !== 0) {
      throw r.bad(
        "num_key_value_heads",
        `(${nKvHeads}${r.json.num_key_value_heads === undefined ? `, ${modelType}'s default when the key is absent` : ""}) must divide num_attention_heads (${nHeads}): each key/value head serves a whole group of query heads`,
      );
    }
    let dHead: number;
    if (r.json.head_dim != null) {
      dHead = r.positiveInt("head_dim");
    } else if (dModel % nHeads === 0) {
      dHead = dModel / nHeads;
    } else {
      throw r.bad(
        "num_attention_heads",
        `(${nHeads}) does not divide hidden_size (${dModel}) and there is no head_dim: add "head_dim" to the config`,
      );
    }
    const act = r.json.hidden_act ?? "silu";
    if (act !== "silu" && act !== "swish") {
      throw r.bad("hidden_act", `is ${JSON.stringify(act)}; the Llama family is supported with "silu" only`);
    }
    const params = r.json.rope_parameters as Record<string, unknown> | null | undefined;
    const theta = r.positiveNumber("rope_theta", 10000, r.json.rope_theta ?? params?.rope_theta);
    const attentionBias = modelType === "llama" ? r.bool("attention_bias", false) : false;
    let slidingWindow: number | null = null;
    // MistralConfig's sliding_window defaults to 4096 when the key is absent; null means full attention.
    if (modelType === "mistral" && r.json.sliding_window !== null) {
      slidingWindow = r.positiveInt("sliding_window", MISTRAL_DEFAULT_WINDOW);
    }
    if (modelType === "qwen2" && r.json.use_sliding_window === true) {
      throw r.bad(
        "use_sliding_window",
        "is true: Qwen2's per-layer sliding window is not supported — use a checkpoint without it",
      );
    }
    return {
      nLayers,
      nHeads,
      dModel,
      dHead,
      dMlp,
      nCtx,
      dVocab,
      lnEps: r.positiveNumber("rms_norm_eps", 1e-6),
      act: "silu",
      modelType,
      normalization: "rmsnorm",
      positions: "rotary",
      rotary: { theta, dim: dHead, scaling: parseRopeScaling(r) },
      nKvHeads,
      qkvBias: modelType === "qwen2" || attentionBias,
      outBias: attentionBias,
      gatedMlp: true,
      mlpBias: modelType === "llama" ? r.bool("mlp_bias", false) : false,
      tiedEmbeddings: r.bool("tie_word_embeddings", false),
      slidingWindow,
      parallelResidual: false,
    };
  },

  toConfigJson(c: ModelConfig): Record<string, unknown> {
    const arch = { llama: "LlamaForCausalLM", mistral: "MistralForCausalLM", qwen2: "Qwen2ForCausalLM" };
    const json: Record<string, unknown> = {
      model_type: c.modelType,
      architectures: [arch[c.modelType as keyof typeof arch]],
      ...rmsDecoderShapeJson(c),
      rope_theta: c.rotary?.theta ?? 10000,
      rope_scaling: ropeScalingJson(c.rotary?.scaling ?? null),
      hidden_act: "silu",
      tie_word_embeddings: c.tiedEmbeddings,
    };
    if (c.modelType === "llama") {
      json.attention_bias = c.outBias;
      json.mlp_bias = c.mlpBias;
    }
    if (c.modelType === "mistral") json.sliding_window = c.slidingWindow;
    return json;
  },

  /** torch.nn.Linear weights are [out, in]. */
  expectedTensors(c: ModelConfig): Map<string, number[]> {
    const { dModel: D, dMlp, dVocab } = c;
    const q = c.nHeads * c.dHead;
    const kv = c.nKvHeads * c.dHead;
    const shapes = new Map<string, number[]>([["model.embed_tokens.weight", [dVocab, D]]]);
    const linear = (name: string, out: number, inDim: number, bias: boolean) => {
      shapes.set(`${name}.weight`, [out, inDim]);
      if (bias) shapes.set(`${name}.bias`, [out]);
    };
    for (let l = 0; l < c.nLayers; l++) {
      const p = `model.layers.${l}`;
      shapes.set(`${p}.input_layernorm.weight`, [D]);
      linear(`${p}.self_attn.q_proj`, q, D, c.qkvBias);
      linear(`${p}.self_attn.k_proj`, kv, D, c.qkvBias);
      linear(`${p}.self_attn.v_proj`, kv, D, c.qkvBias);
      linear(`${p}.self_attn.o_proj`, D, q, c.outBias);
      shapes.set(`${p}.post_attention_layernorm.weight`, [D]);
      linear(`${p}.mlp.gate_proj`, dMlp, D, c.mlpBias);
      linear(`${p}.mlp.up_proj`, dMlp, D, c.mlpBias);
      linear(`${p}.mlp.down_proj`, D, dMlp, c.mlpBias);
    }
    shapes.set("model.norm.weight", [D]);
    if (!c.tiedEmbeddings) shapes.set("lm_head.weight", [dVocab, D]);
    return shapes;
  },

  embeddingTensors: () => ({ tokens: "model.embed_tokens.weight", positions: null }),

  convertBlock(src: TensorSource, c: ModelConfig, l: number): BlockWeights {
    const { dModel: D, dHead: dh, dMlp } = c;
    const bias = (name: string, present: boolean, shape: number[]) =>
      present ? new Tensor(src.take(name).data, shape) : Tensor.zeros(shape);
    const perHead = (name: string, heads: number) => takePerHead(src, name, heads, D, dh);
    const p = `model.layers.${l}`;
    const a = `${p}.self_attn`;
    const block: BlockWeights = {
      ln1: rmsNorm(src, `${p}.input_layernorm.weight`, D),
      W_Q: perHead(`${a}.q_proj.weight`, c.nHeads),
      W_K: perHead(`${a}.k_proj.weight`, c.nKvHeads),
      W_V: perHead(`${a}.v_proj.weight`, c.nKvHeads),
      b_Q: bias(`${a}.q_proj.bias`, c.qkvBias, [c.nHeads, dh]),
      b_K: bias(`${a}.k_proj.bias`, c.qkvBias, [c.nKvHeads, dh]),
      b_V: bias(`${a}.v_proj.bias`, c.qkvBias, [c.nKvHeads, dh]),
      // o_proj [D, H*dh] → [H*dh, D] = [H, dh, D].
      W_O: transposed(src, `${a}.o_proj.weight`, D, c.nHeads * dh).reshape([c.nHeads, dh, D]),
      b_O: bias(`${a}.o_proj.bias`, c.outBias, [D]),
      ln2: rmsNorm(src, `${p}.post_attention_layernorm.weight`, D),
      W_in: transposed(src, `${p}.mlp.up_proj.weight`, dMlp, D),
      W_gate: transposed(src, `${p}.mlp.gate_proj.weight`, dMlp, D),
      b_in: bias(`${p}.mlp.up_proj.bias`, c.mlpBias, [dMlp]),
      W_out: transposed(src, `${p}.mlp.down_proj.weight`, D, dMlp),
      b_out: bias(`${p}.mlp.down_proj.bias`, c.mlpBias, [D]),
    };
    if (c.mlpBias) {
      // A gate bias cannot be folded into W_gate; no supported checkpoint has one.
      const gateBias = src.take(`${p}.mlp.gate_proj.bias`).data;
      if (gateBias.some((v) => v !== 0)) {
        throw new Error(`Checkpoint ${src.label}: a nonzero MLP gate bias (mlp_bias) is not supported`);
      }
    }
    return block;
  },

  convertHead(src: TensorSource, c: ModelConfig, W_E: Tensor): HeadWeights {
    return {
      lnFinal: rmsNorm(src, "model.norm.weight", c.dModel),
      W_U: c.tiedEmbeddings ? transpose2d(W_E) : transposed(src, "lm_head.weight", c.dVocab, c.dModel),
      b_U: Tensor.zeros([c.dVocab]),
    };
  },
};

/** RMSNorm's gain; its bias is zero (LayerNormParams carries one for LayerNorm). */
function rmsNorm(src: TensorSource, name: string, D: number): LayerNormParams {
  return { w: new Tensor(src.take(name).data, [D]), b: Tensor.zeros([D]) };
}
