/** The model families circuitscope knows, by Hugging Face `model_type`. Adding a family: docs/models.md. */
import { ConfigReader, configObject, type ModelConfig, type ModelType, modelTypeOf } from "../config.ts";
import type { ModelFamily } from "./family.ts";
import { gpt2Family } from "./gpt2.ts";
import { llamaFamily } from "./llama.ts";

const FAMILIES: Record<ModelType, ModelFamily> = {
  gpt2: gpt2Family,
  llama: llamaFamily,
  mistral: llamaFamily,
  qwen2: llamaFamily,
};

export function familyOf(config: { modelType: ModelType }): ModelFamily {
  return FAMILIES[config.modelType];
}

/**
 * Reads a Hugging Face `config.json` (already JSON-parsed). `source` names the file in errors.
 * Throws a clear error naming the file and the field for anything missing, invalid or unsupported.
 */
export function parseHfConfig(json: unknown, source: string): ModelConfig {
  const obj = configObject(json, source);
  const modelType = modelTypeOf(obj, source);
  return FAMILIES[modelType].parseConfig(new ConfigReader(obj, source), modelType);
}

/** The inverse of parseHfConfig: a minimal HF-style config.json object. */
export function toHfConfigJson(config: ModelConfig): Record<string, unknown> {
  return familyOf(config).toConfigJson(config);
}

export type { ModelFamily, RawTensor } from "./family.ts";
