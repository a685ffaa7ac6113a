/** What each model family provides: reading its config.json, its tensor names, and the converter. */
import type { ModelWeights } from "../canonical-weights.ts";
import type { ConfigReader, ModelConfig, ModelType } from "../config.ts";

export interface RawTensor {
  shape: number[];
  data: Float32Array;
}

export interface ModelFamily {
  /** For errors and docs, e.g. "Llama". */
  readonly label: string;
  /** Whether the checkpoint must bring tokenizer.json (GPT-2's BPE also ships with circuitscope). */
  readonly needsTokenizerFile: boolean;
  parseConfig(reader: ConfigReader, modelType: ModelType): ModelConfig;
  /** A minimal Hugging Face config.json for `config` (the inverse of parseConfig). */
  toConfigJson(config: ModelConfig): Record<string, unknown>;
  /** Every tensor a checkpoint needs, by Hugging Face name, with its stored shape. */
  expectedTensors(config: ModelConfig): Map<string, number[]>;
  /** A prefix stored names may carry that expectedTensors leaves out (GPT2LMHeadModel's `transformer.`). */
  readonly optionalPrefix: string | null;
  /**
   * Hugging Face tensors → TransformerLens layout. Consumes `tensors` entry by entry (deleting what it
   * converted) so that peak memory stays near one copy of the weights.
   */
  convert(tensors: Map<string, RawTensor>, config: ModelConfig, source: string): ModelWeights;
}

/** Removes and returns a tensor, or a clear error naming it. */
export function takeTensor(tensors: Map<string, RawTensor>, name: string, source: string): RawTensor {
  const t = tensors.get(name);
  if (!t) throw new Error(`Checkpoint ${source} has no tensor "${name}"`);
  tensors.delete(name);
  return t;
}
