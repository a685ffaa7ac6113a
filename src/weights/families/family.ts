/** What each model family provides: reading its config.json, its tensor names, and the converter. */

import type { Tensor } from "../../tensor/tensor.ts";
import type { BlockWeights, ModelWeights } from "../canonical-weights.ts";
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
   * The stored tensors that are W_E [d_vocab, d_model] and W_pos [n_ctx, d_model] as they are (null for
   * rotary models): a loader may read embedding rows straight from the file instead of holding W_E.
   */
  embeddingTensors(config: ModelConfig): { tokens: string; positions: string | null };
  /** Block `layer`'s Hugging Face tensors → TransformerLens layout (taking each from `src`). */
  convertBlock(src: TensorSource, config: ModelConfig, layer: number): BlockWeights;
  /** The final norm and the unembedding; `W_E` (as stored, unprocessed) for tied embeddings. */
  convertHead(src: TensorSource, config: ModelConfig, W_E: Tensor): HeadWeights;
}

export type HeadWeights = Pick<ModelWeights, "lnFinal" | "W_U" | "b_U">;

/**
 * Where converters get Hugging Face tensors. Each is taken once: a loader may read it from disk only then
 * and forget it after, so peak memory stays near one block above what the kernels already hold.
 */
export interface TensorSource {
  /** Names the checkpoint in errors. */
  readonly label: string;
  take(name: string): RawTensor;
  /** The file and stored name of `name`, when it can be read again later (not for in-memory tensors). */
  stored(name: string): { path: string; storedName: string } | null;
}

/** In-memory tensors as a source; taking removes an entry so its memory can go once converted. */
export function mapSource(tensors: Map<string, RawTensor>, label: string): TensorSource {
  return {
    label,
    take(name) {
      const t = tensors.get(name);
      if (!t) throw new Error(`Checkpoint ${label} has no tensor "${name}"`);
      tensors.delete(name);
      return t;
    },
    stored: () => null,
  };
}
