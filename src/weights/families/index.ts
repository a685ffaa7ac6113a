/** The model families circuitscope knows, by Hugging Face `model_type`. Adding a family: docs/models.md. */

import { Tensor } from "../../tensor/tensor.ts";
import type { ModelWeights } from "../canonical-weights.ts";
import { ConfigReader, configObject, type ModelConfig, type ModelType, modelTypeOf } from "../config.ts";
import type { ModelFamily, TensorSource } from "./family.ts";
import { gemma2Family } from "./gemma2.ts";
import { gemma3Family } from "./gemma3.ts";
import { gptNeoxFamily } from "./gpt-neox.ts";
import { gpt2Family } from "./gpt2.ts";
import { llamaFamily } from "./llama.ts";

const FAMILIES: Record<ModelType, ModelFamily> = {
  gpt2: gpt2Family,
  llama: llamaFamily,
  mistral: llamaFamily,
  qwen2: llamaFamily,
  gpt_neox: gptNeoxFamily,
  gemma2: gemma2Family,
  gemma3_text: gemma3Family,
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

export {
  type HeadWeights,
  type ModelFamily,
  mapSource,
  type RawTensor,
  type TensorSource,
} from "./family.ts";
export { gpt2Config } from "./gpt2.ts";

/** W_E and W_pos (null for rotary models) taken from `src` as stored. */
export function takeEmbeddings(src: TensorSource, config: ModelConfig): Pick<ModelWeights, "W_E" | "W_pos"> {
  const { tokens, positions } = familyOf(config).embeddingTensors(config);
  const W_E = new Tensor(src.take(tokens).data, [config.dVocab, config.dModel]);
  const W_pos = positions ? new Tensor(src.take(positions).data, [config.nCtx, config.dModel]) : null;
  return { W_E, W_pos };
}

/** Every tensor of `src` converted at once (the whole model in memory; loading a model streams instead). */
export function convertWeights(src: TensorSource, config: ModelConfig): ModelWeights {
  const family = familyOf(config);
  const { W_E, W_pos } = takeEmbeddings(src, config);
  const blocks = Array.from({ length: config.nLayers }, (_, l) => family.convertBlock(src, config, l));
  return { W_E, W_pos, blocks, ...family.convertHead(src, config, W_E) };
}
