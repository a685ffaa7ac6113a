/**
 * The GPT-NeoX family (Pythia, GPT-NeoX-20B): Hugging Face `GPTNeoXForCausalLM` names and config fields →
 * canonical weights. LayerNorm, partial rotary positions (the first rotary_pct · d_head dimensions of each
 * head, rotate-half), a fused `query_key_value` projection interleaved per head, GELU, an untied
 * `embed_out`, and attention and MLP in parallel (`use_parallel_residual`) or in sequence.
 */
import { Tensor } from "../../tensor/tensor.ts";
import { type BlockWeights, transpose2d } from "../canonical-weights.ts";
import type { Activation, ConfigReader, ModelConfig } from "../config.ts";
import type { HeadWeights, ModelFamily, TensorSource } from "./family.ts";
import { takeLayerNorm as layerNorm, takeTransposed as transposed, takeVector as vector } from "./take.ts";

/** HF activation names → ours (GPTNeoXConfig's default is "gelu", the exact erf form). */
const ACTIVATIONS: Record<string, Activation> = {
  gelu: "gelu",
  gelu_new: "gelu_new",
  gelu_pytorch_tanh: "gelu_new",
  relu: "relu",
};

/**
 * Absent keys take GPTNeoXConfig's defaults. Newer transformers write `partial_rotary_factor` and
 * `rope_theta` (possibly inside `rope_parameters`) for the older `rotary_pct` and `rotary_emb_base`.
 */
function parseRotary(r: ConfigReader, dHead: number): { theta: number; dim: number } {
  const params = r.json.rope_parameters as Record<string, unknown> | null | undefined;
  const pctField = r.json.rotary_pct != null ? "rotary_pct" : "partial_rotary_factor";
  const pct = r.positiveNumber(pctField, 0.25, r.json[pctField] ?? params?.partial_rotary_factor);
  if (pct > 1) throw r.bad(pctField, `must be at most 1 (the share of each head rotated), got ${pct}`);
  const baseField = r.json.rotary_emb_base != null ? "rotary_emb_base" : "rope_theta";
  const theta = r.positiveNumber(baseField, 10000, r.json[baseField] ?? params?.rope_theta);
  // HF: rotary_ndims = int(head_size * rotary_pct).
  const dim = Math.floor(dHead * pct);
  if (dim < 2 || dim % 2 !== 0) {
    throw r.bad(
      pctField,
      `(${pct}) gives ${dim} rotary dimensions of a ${dHead}-dimension head; it must give an even number ≥ 2`,
    );
  }
  const scaling =
    r.json.rope_scaling ?? (params?.rope_type != null && params.rope_type !== "default" ? params : null);
  if (scaling != null) {
    throw r.bad(
      "rope_scaling",
      "is set: rotary scaling is not supported for GPT-NeoX — use a checkpoint without it",
    );
  }
  return { theta, dim };
}

export const gptNeoxFamily: ModelFamily = {
  label: "GPT-NeoX",
  needsTokenizerFile: true,
  optionalPrefix: null,

  parseConfig(r: ConfigReader): ModelConfig {
    const nLayers = r.positiveInt("num_hidden_layers", 44);
    const nHeads = r.positiveInt("num_attention_heads", 64);
    const dModel = r.positiveInt("hidden_size", 6144);
    if (dModel % nHeads !== 0) {
      throw r.bad("num_attention_heads", `(${nHeads}) must divide hidden_size (${dModel})`);
    }
    const dHead = dModel / nHeads;
    const actName = r.json.hidden_act ?? "gelu";
    const act = typeof actName === "string" ? ACTIVATIONS[actName] : undefined;
    if (act === undefined) {
      throw r.bad(
        "hidden_act",
        `is ${JSON.stringify(actName)}; supported: ${Object.keys(ACTIVATIONS).join(", ")}`,
      );
    }
    if (r.json.attention_bias === false) {
      throw r.bad(
        "attention_bias",
        "is false: GPT-NeoX without attention biases is not supported — use a checkpoint with them",
      );
    }
    return {
      nLayers,
      nHeads,
      dModel,
      dHead,
      dMlp: r.positiveInt("intermediate_size", 24576),
      nCtx: r.positiveInt("max_position_embeddings", 2048),
      dVocab: r.positiveInt("vocab_size", 50432),
      lnEps: r.positiveNumber("layer_norm_eps", 1e-5),
      act,
      modelType: "gpt_neox",
      normalization: "layernorm",
      positions: "rotary",
      rotary: { ...parseRotary(r, dHead), scaling: null },
      nKvHeads: nHeads,
      qkvBias: true,
      outBias: true,
      gatedMlp: false,
      mlpBias: true,
      tiedEmbeddings: r.bool("tie_word_embeddings", false),
      slidingWindow: null,
      parallelResidual: r.bool("use_parallel_residual", true),
    };
  },

  toConfigJson(c: ModelConfig): Record<string, unknown> {
    const act = Object.entries(ACTIVATIONS).find(([, ours]) => ours === c.act)?.[0] ?? c.act;
    return {
      model_type: "gpt_neox",
      architectures: ["GPTNeoXForCausalLM"],
      hidden_size: c.dModel,
      intermediate_size: c.dMlp,
      num_hidden_layers: c.nLayers,
      num_attention_heads: c.nHeads,
      vocab_size: c.dVocab,
      max_position_embeddings: c.nCtx,
      layer_norm_eps: c.lnEps,
      rotary_pct: (c.rotary?.dim ?? c.dHead) / c.dHead,
      rotary_emb_base: c.rotary?.theta ?? 10000,
      use_parallel_residual: c.parallelResidual,
      hidden_act: act,
      tie_word_embeddings: c.tiedEmbeddings,
      attention_bias: true,
    };
  },

  /** torch.nn.Linear weights are [out, in]; query_key_value is [3 D, D]. */
  expectedTensors(c: ModelConfig): Map<string, number[]> {
    const { dModel: D, dMlp, dVocab } = c;
    const shapes = new Map<string, number[]>([["gpt_neox.embed_in.weight", [dVocab, D]]]);
    const pair = (name: string, weight: number[], bias: number) => {
      shapes.set(`${name}.weight`, weight);
      shapes.set(`${name}.bias`, [bias]);
    };
    for (let l = 0; l < c.nLayers; l++) {
      const p = `gpt_neox.layers.${l}`;
      pair(`${p}.input_layernorm`, [D], D);
      pair(`${p}.post_attention_layernorm`, [D], D);
      pair(`${p}.attention.query_key_value`, [3 * D, D], 3 * D);
      pair(`${p}.attention.dense`, [D, D], D);
      pair(`${p}.mlp.dense_h_to_4h`, [dMlp, D], dMlp);
      pair(`${p}.mlp.dense_4h_to_h`, [D, dMlp], D);
    }
    pair("gpt_neox.final_layer_norm", [D], D);
    if (!c.tiedEmbeddings) shapes.set("embed_out.weight", [dVocab, D]);
    return shapes;
  },

  embeddingTensors: () => ({ tokens: "gpt_neox.embed_in.weight", positions: null }),

  convertBlock(src: TensorSource, c: ModelConfig, l: number): BlockWeights {
    const { dModel: D, nHeads: H, dHead: dh, dMlp } = c;
    const p = `gpt_neox.layers.${l}`;
    // GPTNeoXAttention views the fused output as [.., H, 3 dh]: head h's rows are q_h | k_h | v_h.
    const qkvW = src.take(`${p}.attention.query_key_value.weight`).data; // [3 D, D]
    const qkvB = src.take(`${p}.attention.query_key_value.bias`).data; // [3 D]
    const [W_Q, W_K, W_V] = [0, 1, 2].map((which) => {
      const out = new Float32Array(H * D * dh);
      for (let h = 0; h < H; h++)
        for (let e = 0; e < dh; e++) {
          const row = (h * 3 * dh + which * dh + e) * D;
          for (let d = 0; d < D; d++) out[(h * D + d) * dh + e] = qkvW[row + d];
        }
      return new Tensor(out, [H, D, dh]);
    });
    const [b_Q, b_K, b_V] = [0, 1, 2].map((which) => {
      const out = new Float32Array(H * dh);
      for (let h = 0; h < H; h++)
        out.set(qkvB.subarray(h * 3 * dh + which * dh, h * 3 * dh + (which + 1) * dh), h * dh);
      return new Tensor(out, [H, dh]);
    });
    return {
      ln1: layerNorm(src, `${p}.input_layernorm`),
      W_Q,
      W_K,
      W_V,
      b_Q,
      b_K,
      b_V,
      // dense [D, H dh] → [H dh, D] = [H, dh, D].
      W_O: transposed(src, `${p}.attention.dense.weight`, D, D).reshape([H, dh, D]),
      b_O: vector(src, `${p}.attention.dense.bias`),
      ln2: layerNorm(src, `${p}.post_attention_layernorm`),
      W_in: transposed(src, `${p}.mlp.dense_h_to_4h.weight`, dMlp, D),
      W_gate: null,
      b_in: vector(src, `${p}.mlp.dense_h_to_4h.bias`),
      W_out: transposed(src, `${p}.mlp.dense_4h_to_h.weight`, D, dMlp),
      b_out: vector(src, `${p}.mlp.dense_4h_to_h.bias`),
    };
  },

  convertHead(src: TensorSource, c: ModelConfig, W_E: Tensor): HeadWeights {
    return {
      lnFinal: layerNorm(src, "gpt_neox.final_layer_norm"),
      W_U: c.tiedEmbeddings ? transpose2d(W_E) : transposed(src, "embed_out.weight", c.dVocab, c.dModel),
      b_U: Tensor.zeros([c.dVocab]),
    };
  },
};

/**
 * The Pythia suite's config.json fields (EleutherAI/pythia-*: every size shares vocabulary, context,
 * rotary_pct 0.25 and the parallel residual), for random checkpoints of the real shapes.
 */
export const PYTHIA_SHAPES: Record<string, Record<string, unknown>> = Object.fromEntries(
  (
    [
      ["pythia-70m", 6, 512, 8],
      ["pythia-160m", 12, 768, 12],
      ["pythia-410m", 24, 1024, 16],
      ["pythia-1b", 16, 2048, 8],
    ] as const
  ).map(([name, layers, d, heads]) => [
    name,
    {
      model_type: "gpt_neox",
      num_hidden_layers: layers,
      hidden_size: d,
      num_attention_heads: heads,
      intermediate_size: 4 * d,
      vocab_size: 50304,
      max_position_embeddings: 2048,
      rotary_pct: 0.25,
      rotary_emb_base: 10000,
      use_parallel_residual: true,
      layer_norm_eps: 1e-5,
      hidden_act: "gelu",
      tie_word_embeddings: false,
    },
  ]),
);
