/** The GPT-2 family: Hugging Face `GPT2LMHeadModel` names and config fields → canonical weights. */
import { Tensor } from "../../tensor/tensor.ts";
import { type BlockWeights, transpose2d } from "../canonical-weights.ts";
import type { Activation, ConfigReader, ModelConfig, ModelShape } from "../config.ts";
import type { HeadWeights, ModelFamily, TensorSource } from "./family.ts";
import { takeLayerNorm as layerNorm, takeVector as vector } from "./take.ts";

/** HF activation names -> ours. gelu_pytorch_tanh is the same tanh approximation as gelu_new. */
const ACTIVATIONS: Record<string, Activation> = {
  gelu_new: "gelu_new",
  gelu_pytorch_tanh: "gelu_new",
  gelu: "gelu",
  relu: "relu",
};

export const gpt2Family: ModelFamily = {
  label: "GPT-2",
  needsTokenizerFile: false,
  optionalPrefix: "transformer.",

  parseConfig(r: ConfigReader): ModelConfig {
    const nLayers = r.positiveInt("n_layer");
    const nHeads = r.positiveInt("n_head");
    const dModel = r.positiveInt("n_embd");
    const dVocab = r.positiveInt("vocab_size");
    const nCtx = r.json.n_positions !== undefined ? r.positiveInt("n_positions") : r.positiveInt("n_ctx");
    // n_inner is null in most HF GPT-2 configs, meaning 4 * n_embd.
    const dMlp = r.json.n_inner === null ? 4 * dModel : r.positiveInt("n_inner", 4 * dModel);
    if (dModel % nHeads !== 0) throw r.bad("n_head", `(${nHeads}) must divide n_embd (${dModel})`);
    const lnEps = r.positiveNumber("layer_norm_epsilon", 1e-5);
    // GPT2Config ties the unembedding to the embedding unless told otherwise; the converter reads no lm_head.
    if (!r.bool("tie_word_embeddings", true)) {
      throw r.bad(
        "tie_word_embeddings",
        "is false: only GPT-2 checkpoints with a tied unembedding are supported",
      );
    }
    const actName = r.json.activation_function ?? "gelu_new";
    const act = typeof actName === "string" ? ACTIVATIONS[actName] : undefined;
    if (act === undefined) {
      throw r.bad(
        "activation_function",
        `is ${JSON.stringify(actName)}; supported: ${Object.keys(ACTIVATIONS).join(", ")}`,
      );
    }
    return gpt2Config({ nLayers, nHeads, dModel, dHead: dModel / nHeads, dMlp, nCtx, dVocab, lnEps, act });
  },

  toConfigJson(config: ModelConfig): Record<string, unknown> {
    return {
      model_type: "gpt2",
      architectures: ["GPT2LMHeadModel"],
      n_layer: config.nLayers,
      n_head: config.nHeads,
      n_embd: config.dModel,
      n_inner: config.dMlp === 4 * config.dModel ? null : config.dMlp,
      n_positions: config.nCtx,
      n_ctx: config.nCtx,
      vocab_size: config.dVocab,
      layer_norm_epsilon: config.lnEps,
      activation_function: config.act,
      bos_token_id: config.dVocab - 1,
      eos_token_id: config.dVocab - 1,
    };
  },

  /** HF Conv1D weights are [in, out]. */
  expectedTensors(config: ModelConfig): Map<string, number[]> {
    const { dModel: D, dMlp, dVocab, nCtx } = config;
    const shapes = new Map<string, number[]>([
      ["wte.weight", [dVocab, D]],
      ["wpe.weight", [nCtx, D]],
    ]);
    for (let l = 0; l < config.nLayers; l++) {
      const h = `h.${l}`;
      shapes.set(`${h}.ln_1.weight`, [D]);
      shapes.set(`${h}.ln_1.bias`, [D]);
      shapes.set(`${h}.attn.c_attn.weight`, [D, 3 * D]);
      shapes.set(`${h}.attn.c_attn.bias`, [3 * D]);
      shapes.set(`${h}.attn.c_proj.weight`, [D, D]);
      shapes.set(`${h}.attn.c_proj.bias`, [D]);
      shapes.set(`${h}.ln_2.weight`, [D]);
      shapes.set(`${h}.ln_2.bias`, [D]);
      shapes.set(`${h}.mlp.c_fc.weight`, [D, dMlp]);
      shapes.set(`${h}.mlp.c_fc.bias`, [dMlp]);
      shapes.set(`${h}.mlp.c_proj.weight`, [dMlp, D]);
      shapes.set(`${h}.mlp.c_proj.bias`, [D]);
    }
    shapes.set("ln_f.weight", [D]);
    shapes.set("ln_f.bias", [D]);
    return shapes;
  },

  embeddingTensors: () => ({ tokens: "wte.weight", positions: "wpe.weight" }),

  convertBlock(src: TensorSource, cfg: ModelConfig, l: number): BlockWeights {
    const { dModel: D, nHeads: H, dHead: dh } = cfg;
    const p = `h.${l}`;
    const vec = (name: string) => vector(src, name);
    // c_attn is Conv1D [D, 3D]: columns are Q | K | V, each split into heads of d_head.
    const cAttnW = src.take(`${p}.attn.c_attn.weight`).data;
    const cAttnB = src.take(`${p}.attn.c_attn.bias`).data;
    const [W_Q, W_K, W_V] = [0, 1, 2].map((which) => {
      const out = new Float32Array(H * D * dh);
      for (let h = 0; h < H; h++)
        for (let d = 0; d < D; d++) {
          const at = d * 3 * D + which * D + h * dh;
          out.set(cAttnW.subarray(at, at + dh), (h * D + d) * dh);
        }
      return new Tensor(out, [H, D, dh]);
    });
    const [b_Q, b_K, b_V] = [0, 1, 2].map(
      (which) => new Tensor(cAttnB.slice(which * D, (which + 1) * D), [H, dh]),
    );
    return {
      ln1: layerNorm(src, `${p}.ln_1`),
      W_Q,
      W_K,
      W_V,
      b_Q,
      b_K,
      b_V,
      // c_proj [D_in = H*dh, D] already is [H, dh, D] row-major.
      W_O: new Tensor(src.take(`${p}.attn.c_proj.weight`).data, [H, dh, D]),
      b_O: vec(`${p}.attn.c_proj.bias`),
      ln2: layerNorm(src, `${p}.ln_2`),
      W_in: new Tensor(src.take(`${p}.mlp.c_fc.weight`).data, [D, cfg.dMlp]),
      W_gate: null,
      b_in: vec(`${p}.mlp.c_fc.bias`),
      W_out: new Tensor(src.take(`${p}.mlp.c_proj.weight`).data, [cfg.dMlp, D]),
      b_out: vec(`${p}.mlp.c_proj.bias`),
    };
  },

  /** Tied unembedding: W_U = W_E^T, b_U = 0. */
  convertHead(src: TensorSource, cfg: ModelConfig, W_E: Tensor): HeadWeights {
    return { lnFinal: layerNorm(src, "ln_f"), W_U: transpose2d(W_E), b_U: Tensor.zeros([cfg.dVocab]) };
  },
};

/** GPT-2's architecture for a shape. */
export function gpt2Config(shape: ModelShape): ModelConfig {
  return {
    ...shape,
    modelType: "gpt2",
    normalization: "layernorm",
    positions: "learned",
    rotary: null,
    nKvHeads: shape.nHeads,
    qkvBias: true,
    outBias: true,
    gatedMlp: false,
    mlpBias: true,
    tiedEmbeddings: true,
    slidingWindow: null,
    parallelResidual: false,
  };
}
