/**
 * Converted and processed weights in the order the forward engine takes them: the head first, then one
 * block at a time, each made only when the engine asks for it. Loading a model therefore holds about
 * one block in JavaScript on top of what the kernels already hold, never the whole model twice.
 */
import type { BlockWeights, ModelWeights } from "../weights/canonical-weights.ts";
import type { ModelConfig } from "../weights/config.ts";
import { familyOf, type ModelFamily, type TensorSource, takeEmbeddings } from "../weights/families/index.ts";
import { embeddingFromFile, embeddingInMemory } from "./embedding-table.ts";
import type { WeightParts } from "./forward.ts";
import {
  centresWritingWeights,
  type ProcessingOptions,
  processBlock,
  processEmbeddings,
  processHead,
} from "./processing.ts";

/**
 * Hugging Face tensors → engine parts, converted and processed part by part. W_E is read once (checked
 * finite, and the tied unembedding is made from it); when `src` can read it again from a file, the model
 * keeps no copy and reads the rows it needs from there.
 */
export function weightPartsFrom(
  src: TensorSource,
  cfg: ModelConfig,
  processing: ProcessingOptions,
): WeightParts {
  const family = familyOf(cfg);
  const { W_E, W_pos } = takeEmbeddings(src, cfg);
  // The head before the embeddings are processed: a tied unembedding is the stored W_E transposed.
  const head = family.convertHead(src, cfg, W_E);
  processHead(head, cfg, processing);
  const file = src.stored(family.embeddingTensors(cfg).tokens);
  // A file-backed W_E is centred row by row as it is read; only an in-memory one is processed here.
  processEmbeddings({ W_E: file ? null : W_E, W_pos }, cfg, processing);
  const embedding = file
    ? embeddingFromFile({
        ...file,
        dVocab: cfg.dVocab,
        dModel: cfg.dModel,
        centre: centresWritingWeights(cfg, processing),
      })
    : embeddingInMemory(W_E);
  const blocks = blocksFrom({ src, cfg, processing, family });
  return { embedding, W_pos, takeHead: handOver(head), blocks };
}

/** Each block converted and processed when the consumer asks for it. */
function* blocksFrom({
  src,
  cfg,
  processing,
  family,
}: {
  src: TensorSource;
  cfg: ModelConfig;
  processing: ProcessingOptions;
  family: ModelFamily;
}): Generator<BlockWeights> {
  for (let l = 0; l < cfg.nLayers; l++) {
    const block = family.convertBlock(src, cfg, l);
    processBlock(block, cfg, processing);
    yield block;
  }
}

/** Weights already converted and processed, whole in memory, as engine parts. */
export function weightPartsOf(w: ModelWeights): WeightParts {
  return {
    embedding: embeddingInMemory(w.W_E),
    W_pos: w.W_pos,
    takeHead: () => ({ lnFinal: w.lnFinal, W_U: w.W_U, b_U: w.b_U }),
    blocks: w.blocks,
  };
}

/** Returns `value` once and forgets it. */
function handOver<T>(value: T): () => T {
  let held: T | null = value;
  return () => {
    if (held === null) throw new Error("handed over already");
    const v = held;
    held = null;
    return v;
  };
}
