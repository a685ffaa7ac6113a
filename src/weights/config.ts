/** GPT-2 hyper-parameters, and parsing them from a Hugging Face `config.json`. */
import type { ActivationKind } from "../tensor/kernels.ts";

export interface GPT2Config {
  nLayers: number;
  nHeads: number;
  dModel: number;
  dHead: number;
  dMlp: number;
  /** Number of learned positions (rows of `wpe.weight`). */
  nCtx: number;
  dVocab: number;
  lnEps: number;
  act: ActivationKind;
}

/** HF activation names -> ours. gelu_pytorch_tanh is the same tanh approximation as gelu_new. */
const ACTIVATIONS: Record<string, GPT2Config["act"]> = {
  gelu_new: "gelu_new",
  gelu_pytorch_tanh: "gelu_new",
  gelu: "gelu",
  relu: "relu",
};

/**
 * Reads a Hugging Face GPT-2 `config.json` (already JSON-parsed). `source` names the file in errors.
 * Throws a clear error naming the file and the field for anything missing or invalid.
 */
export function parseHfGpt2Config(json: unknown, source: string): GPT2Config {
  if (json === null || typeof json !== "object" || Array.isArray(json)) {
    throw new Error(
      `Invalid model config ${source}: expected a JSON object — check the path or re-download it`,
    );
  }
  const cfg = json as Record<string, unknown>;
  const bad = (field: string, what: string) =>
    new Error(`Invalid model config ${source}: field "${field}" ${what} — re-download it or fix the file`);

  if (cfg.model_type !== undefined && cfg.model_type !== "gpt2") {
    throw new Error(
      `Unsupported model in ${source}: model_type is "${String(cfg.model_type)}", but only GPT-2-style ` +
        `models (model_type "gpt2": gpt2, distilgpt2, gpt2-medium/large/xl, ...) are supported`,
    );
  }

  const positiveInt = (field: string, fallback?: number): number => {
    const value = cfg[field] ?? fallback;
    if (value === undefined) throw bad(field, "is missing");
    if (typeof value !== "number" || !Number.isInteger(value) || value <= 0) {
      throw bad(field, `must be a positive integer, got ${JSON.stringify(value)}`);
    }
    return value;
  };

  const nLayers = positiveInt("n_layer");
  const nHeads = positiveInt("n_head");
  const dModel = positiveInt("n_embd");
  const dVocab = positiveInt("vocab_size");
  const nCtx = cfg.n_positions !== undefined ? positiveInt("n_positions") : positiveInt("n_ctx");
  // n_inner is null in most HF GPT-2 configs, meaning 4 * n_embd.
  const dMlp = cfg.n_inner === null ? 4 * dModel : positiveInt("n_inner", 4 * dModel);
  if (dModel % nHeads !== 0) {
    throw bad("n_head", `(${nHeads}) must divide n_embd (${dModel})`);
  }

  const eps = cfg.layer_norm_epsilon ?? 1e-5;
  if (typeof eps !== "number" || !(eps > 0) || !Number.isFinite(eps)) {
    throw bad("layer_norm_epsilon", `must be a positive number, got ${JSON.stringify(eps)}`);
  }

  const actName = cfg.activation_function ?? "gelu_new";
  const act = typeof actName === "string" ? ACTIVATIONS[actName] : undefined;
  if (act === undefined) {
    throw bad(
      "activation_function",
      `is ${JSON.stringify(actName)}; supported: ${Object.keys(ACTIVATIONS).join(", ")}`,
    );
  }

  return { nLayers, nHeads, dModel, dHead: dModel / nHeads, dMlp, nCtx, dVocab, lnEps: eps, act };
}

/** The inverse of parseHfGpt2Config: a minimal HF-style config.json object. */
export function toHfGpt2ConfigJson(config: GPT2Config): Record<string, unknown> {
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
}
