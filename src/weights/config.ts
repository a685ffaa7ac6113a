/**
 * The model config: a shape plus one architecture description, read from a Hugging Face `config.json`.
 * Everything that differs between model families is a field here; each family's reader lives in
 * `families/` (one file per family) and is chosen by `model_type`.
 */

import type { Activation } from "../tensor/activations.ts";

export type { Activation };

/** A model's shape, whatever its family: sizes, context, vocabulary, norm epsilon and non-linearity. */
export interface ModelShape {
  nLayers: number;
  nHeads: number;
  dModel: number;
  dHead: number;
  dMlp: number;
  /** Longest sequence: learned positions (rows of `wpe.weight`), or `max_position_embeddings` for rotary models. */
  nCtx: number;
  dVocab: number;
  lnEps: number;
  act: Activation;
}

export const MODEL_TYPES = [
  "gpt2",
  "llama",
  "mistral",
  "qwen2",
  "gpt_neox",
  "gemma2",
  "gemma3_text",
] as const;
export type ModelType = (typeof MODEL_TYPES)[number];

/** Hugging Face's rotary frequency rescalings (`rope_scaling` / `rope_parameters`). */
export type RopeScaling =
  | { type: "linear"; factor: number }
  | {
      type: "llama3";
      factor: number;
      lowFreqFactor: number;
      highFreqFactor: number;
      originalMaxPositions: number;
    };

export interface RotaryConfig {
  theta: number;
  /** Rotated dimensions per head: the first `dim` of d_head (GPT-NeoX's rotary_pct · d_head); the rest pass unrotated. */
  dim: number;
  scaling: RopeScaling | null;
}

/** How one architecture differs from another; forward, processing and hooks read only these fields. */
export interface Architecture {
  modelType: ModelType;
  /** LayerNorm (centre, scale, w, b) or RMSNorm (scale, w). */
  normalization: "layernorm" | "rmsnorm";
  /** Learned position embeddings added to the residual, or rotary positions applied to q and k. */
  positions: "learned" | "rotary";
  rotary: RotaryConfig | null;
  /**
   * The rotary positions of sliding-window layers when they differ from `rotary` (Gemma 3: base
   * rope_local_base_freq, unscaled, while global layers use rope_theta and rope_scaling); absent or null:
   * `rotary` on every layer.
   */
  rotaryLocal?: RotaryConfig | null;
  /** Key/value heads (grouped-query attention when fewer than nHeads). */
  nKvHeads: number;
  /** q/k/v projections have biases (GPT-2, Qwen2). */
  qkvBias: boolean;
  /** The attention output projection has a bias (GPT-2). */
  outBias: boolean;
  /** Gated MLP: down(act(gate(x)) * up(x)); otherwise out(act(in(x))). */
  gatedMlp: boolean;
  mlpBias: boolean;
  /** The unembedding is the embedding's transpose. */
  tiedEmbeddings: boolean;
  /** Attention window in positions (Mistral), or null for full causal attention. */
  slidingWindow: number | null;
  /**
   * Attention and MLP read the same residual (GPT-NeoX's use_parallel_residual, GPT-J):
   * resid_post = resid_pre + attn(ln1(resid_pre)) + mlp(ln2(resid_pre)); otherwise the MLP reads resid_mid.
   */
  parallelResidual: boolean;
  /**
   * Per layer, whether `slidingWindow` applies ("sliding") or the layer attends to every earlier position
   * ("full"), as Hugging Face's `layer_types` (Gemma 2 alternates, the first layer sliding). Absent or null:
   * every layer is windowed when `slidingWindow` is set.
   */
  layerTypes?: readonly ("sliding" | "full")[] | null;
  /** Token embeddings are multiplied by this (Gemma: sqrt(d_model)); absent or null: not scaled. */
  embedScale?: number | null;
  /** What q·k is multiplied by (Gemma 2: query_pre_attn_scalar^-0.5); absent or null: 1/sqrt(d_head). */
  attnScale?: number | null;
  /** Attention-logit soft-capping cap · tanh(score / cap) before the mask (Gemma 2); absent or null: none. */
  attnSoftCap?: number | null;
  /** Final-logit soft-capping cap · tanh(logit / cap) (Gemma 2); absent or null: none. */
  finalSoftCap?: number | null;
  /**
   * Norms after attention and after the MLP too (Gemma 2's post_attention_layernorm and
   * post_feedforward_layernorm: TransformerLens' `ln1_post` / `ln2_post`), applied before each output
   * joins the residual; absent: none.
   */
  postNorms?: boolean;
  /**
   * QK-norm (Gemma 3's q_norm / k_norm, TransformerLens' `attn.q_norm` / `attn.k_norm`): each head's q and
   * k RMS-normalised over d_head, with a gain of d_head, after the projection and before any rotation;
   * absent: none.
   */
  qkNorm?: boolean;
}

/** The attention window of `layer`: the sliding window where that layer has one, else null. */
export function layerWindow(
  a: Pick<Architecture, "slidingWindow" | "layerTypes">,
  layer: number,
): number | null {
  if (a.slidingWindow === null) return null;
  return !a.layerTypes || a.layerTypes[layer] === "sliding" ? a.slidingWindow : null;
}

/** The rotary positions of `layer`: `rotaryLocal` on a sliding layer of a model that has one, else `rotary`. */
export function layerRotary(
  a: Pick<Architecture, "rotary" | "rotaryLocal" | "layerTypes">,
  layer: number,
): RotaryConfig | null {
  return a.rotaryLocal && a.layerTypes?.[layer] === "sliding" ? a.rotaryLocal : a.rotary;
}

export interface ModelConfig extends ModelShape, Architecture {}

/** Reads fields of one config.json with errors that name the file, the field and the fix. */
export class ConfigReader {
  constructor(
    readonly json: Record<string, unknown>,
    readonly source: string,
  ) {}

  bad(field: string, what: string): Error {
    return new Error(
      `Invalid model config ${this.source}: field "${field}" ${what} — re-download it or fix the file`,
    );
  }

  positiveInt(field: string, fallback?: number): number {
    const value = this.json[field] ?? fallback;
    if (value === undefined) throw this.bad(field, "is missing");
    if (typeof value !== "number" || !Number.isInteger(value) || value <= 0) {
      throw this.bad(field, `must be a positive integer, got ${JSON.stringify(value)}`);
    }
    return value;
  }

  positiveNumber(field: string, fallback: number, value: unknown = this.json[field]): number {
    const v = value ?? fallback;
    if (typeof v !== "number" || !(v > 0) || !Number.isFinite(v)) {
      throw this.bad(field, `must be a positive number, got ${JSON.stringify(v)}`);
    }
    return v;
  }

  bool(field: string, fallback: boolean): boolean {
    const v = this.json[field] ?? fallback;
    if (typeof v !== "boolean") throw this.bad(field, `must be true or false, got ${JSON.stringify(v)}`);
    return v;
  }
}

/** The JSON object of a config file, or a clear error. */
export function configObject(json: unknown, source: string): Record<string, unknown> {
  if (json === null || typeof json !== "object" || Array.isArray(json)) {
    throw new Error(
      `Invalid model config ${source}: expected a JSON object — check the path or re-download it`,
    );
  }
  return json as Record<string, unknown>;
}

/**
 * `model_type`, or a clear error listing what is supported. A missing model_type means GPT-2 (old configs),
 * but only for a config with GPT-2's fields: otherwise the missing field is the problem, not "n_layer".
 */
export function modelTypeOf(cfg: Record<string, unknown>, source: string): ModelType {
  if (cfg.model_type === undefined && cfg.n_layer === undefined)
    throw new Error(
      `Invalid model config ${source}: field "model_type" is missing, and the config is not an old GPT-2 one ` +
        `(no n_layer) — add "model_type" to config.json: one of ${MODEL_TYPES.join(", ")}` +
        (cfg.num_hidden_layers !== undefined
          ? ' (num_hidden_layers suggests "llama", "mistral" or "qwen2")'
          : ""),
    );
  const t = cfg.model_type ?? "gpt2";
  if (typeof t === "string" && (MODEL_TYPES as readonly string[]).includes(t)) return t as ModelType;
  throw new Error(
    `Unsupported model in ${source}: model_type is ${JSON.stringify(t)}; supported model types: ` +
      `${MODEL_TYPES.join(", ")} (GPT-2 family; Llama 1-3, TinyLlama, SmolLM; Mistral; Qwen2/2.5; GPT-NeoX, Pythia; Gemma 2; Gemma 3 text) — ` +
      "pick a checkpoint of one of these families",
  );
}
