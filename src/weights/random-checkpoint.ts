/**
 * Writes a random but valid Hugging Face checkpoint directory of any supported family, for tests and
 * benchmarks (no real weights can be downloaded here). Seeded, so the same options give the same bytes.
 */
import { copyFileSync, existsSync, mkdirSync } from "node:fs";
import { join } from "node:path";
import { writeFileAtomic } from "../util/atomic-write.ts";
import { mulberry32, randn } from "../util/random.ts";
import { bundledModelDir } from "./bundled-models.ts";
import { CONFIG_FILE, TOKENIZER_FILES, WEIGHTS_FILE, WEIGHTS_INDEX_FILE } from "./checkpoint-files.ts";
import type { ModelConfig } from "./config.ts";
import { familyOf, toHfConfigJson } from "./families/index.ts";
import { type SafetensorsWriteDtype, writeSafetensors } from "./safetensors.ts";

export interface RandomCheckpointOptions {
  seed?: number;
  dtype?: SafetensorsWriteDtype;
  /** Store names as `transformer.wte.weight` etc. (as GPT2LMHeadModel state dicts do). */
  prefix?: boolean;
  /**
   * Also store what real checkpoints carry beyond the weights: GPT-2's `h.{l}.attn.bias` causal mask and
   * `h.{l}.attn.masked_bias` buffers, and a tied `lm_head.weight` (any family with tied embeddings).
   */
  includeBuffers?: boolean;
  /** Split the weights over this many files with a model.safetensors.index.json (default 1: one file). */
  shards?: number;
  /** Standard deviation of weights and biases (default 0.02, GPT-2's init). */
  std?: number;
  /**
   * Where tokenizer.json / tokenizer_config.json are copied from, for families that need them (default:
   * the bundled stories260k's, a 512-token SentencePiece-style vocabulary).
   */
  tokenizerFrom?: string;
}

type TensorRecord = Record<string, { shape: number[]; data: Float32Array }>;

/**
 * Normalisation gains of every family: GPT-2's ln_1/ln_2/ln_f, Llama's and GPT-NeoX's input/post-attention
 * layernorm, Gemma 2's pre/post-feedforward layernorm, Gemma 3's q_norm/k_norm, Llama's norm and GPT-NeoX's
 * final_layer_norm.
 * (Gemma stores gain − 1, so its effective gains come out near 2: still of one scale.)
 */
const NORM_GAIN =
  /(^|\.)(ln_(1|2|f)|input_layernorm|post_attention_layernorm|(pre|post)_feedforward_layernorm|norm|(q|k)_norm|final_layer_norm)\.weight$/;

function randomTensors(config: ModelConfig, seed: number, std: number): TensorRecord {
  const rng = mulberry32(seed);
  const tensors: TensorRecord = {};
  for (const [name, shape] of familyOf(config).expectedTensors(config)) {
    const data = new Float32Array(shape.reduce((a, b) => a * b, 1));
    // Norm gains near 1 (so activations keep their scale); everything else, biases included,
    // small and nonzero so a loader or model that ignores a tensor gives visibly different results.
    const isLnGain = NORM_GAIN.test(name);
    for (let i = 0; i < data.length; i++) data[i] = isLnGain ? 1 + 0.1 * randn(rng) : std * randn(rng);
    tensors[name] = { shape, data };
  }
  return tensors;
}

function bufferTensors(config: ModelConfig, weights: TensorRecord): TensorRecord {
  const tensors: TensorRecord = {};
  if (config.positions === "learned") {
    const n = config.nCtx;
    const mask = new Float32Array(n * n);
    for (let q = 0; q < n; q++) for (let k = 0; k <= q; k++) mask[q * n + k] = 1;
    for (let l = 0; l < config.nLayers; l++) {
      tensors[`h.${l}.attn.bias`] = { shape: [1, 1, n, n], data: mask };
      tensors[`h.${l}.attn.masked_bias`] = { shape: [], data: new Float32Array([-1e4]) };
    }
  }
  if (config.tiedEmbeddings) {
    const embed =
      weights["wte.weight"] ?? weights["model.embed_tokens.weight"] ?? weights["gpt_neox.embed_in.weight"];
    tensors[config.modelType === "gpt_neox" ? "embed_out.weight" : "lm_head.weight"] = {
      shape: [config.dVocab, config.dModel],
      data: embed.data,
    };
  }
  return tensors;
}

/** Splits tensors into `shards` consecutive groups of roughly equal byte size. */
function splitIntoShards(tensors: TensorRecord, shards: number): TensorRecord[] {
  const entries = Object.entries(tensors);
  const total = entries.reduce((sum, [, t]) => sum + t.data.length, 0);
  const groups: TensorRecord[] = Array.from({ length: shards }, () => ({}));
  let seen = 0;
  for (const [name, tensor] of entries) {
    const group = Math.min(shards - 1, Math.floor((seen / total) * shards));
    groups[group][name] = tensor;
    seen += tensor.data.length;
  }
  return groups;
}

/**
 * Writes config.json, weights (and for families that need one, a tokenizer) for `config` into `dir`
 * (created if needed) and returns the float32 values written (before any F16/BF16 rounding), keyed by
 * unprefixed name. (A GPT-2 of a given shape: `gpt2Config(shape)`, src/weights/families/gpt2.ts.)
 */
export function makeRandomCheckpoint(
  dir: string,
  config: ModelConfig,
  opts: RandomCheckpointOptions = {},
): Map<string, { shape: number[]; data: Float32Array }> {
  const family = familyOf(config);
  const { seed = 0, dtype = "F32", prefix = false, includeBuffers = false, shards = 1, std = 0.02 } = opts;
  if (!Number.isInteger(shards) || shards < 1)
    throw new Error(`makeRandomCheckpoint: shards must be >= 1, got ${shards}`);
  mkdirSync(dir, { recursive: true });

  const weights = randomTensors(config, seed, std);
  const stored: TensorRecord = includeBuffers
    ? { ...weights, ...bufferTensors(config, weights) }
    : { ...weights };
  const named: TensorRecord = {};
  for (const [name, tensor] of Object.entries(stored)) {
    // lm_head sits outside `transformer.` in GPT2LMHeadModel, so it never takes the prefix.
    const withPrefix = prefix && family.optionalPrefix && name !== "lm_head.weight";
    named[withPrefix ? family.optionalPrefix + name : name] = tensor;
  }

  if (shards === 1) {
    writeSafetensors(join(dir, WEIGHTS_FILE), named, dtype);
  } else {
    const weightMap: Record<string, string> = {};
    let totalSize = 0;
    const bytesPer = dtype === "F32" ? 4 : 2;
    splitIntoShards(named, shards).forEach((group, i) => {
      const file = `model-${String(i + 1).padStart(5, "0")}-of-${String(shards).padStart(5, "0")}.safetensors`;
      writeSafetensors(join(dir, file), group, dtype);
      for (const [name, tensor] of Object.entries(group)) {
        weightMap[name] = file;
        totalSize += tensor.data.length * bytesPer;
      }
    });
    writeJsonAtomic(join(dir, WEIGHTS_INDEX_FILE), {
      metadata: { total_size: totalSize },
      weight_map: weightMap,
    });
  }
  if (family.needsTokenizerFile) {
    const from = opts.tokenizerFrom ?? bundledModelDir("stories260k")!;
    for (const file of TOKENIZER_FILES) {
      if (existsSync(join(from, file))) copyFileSync(join(from, file), join(dir, file));
    }
  }
  writeJsonAtomic(join(dir, CONFIG_FILE), toHfConfigJson(config));
  return new Map(Object.entries(weights));
}

function writeJsonAtomic(path: string, value: unknown): void {
  writeFileAtomic(path, `${JSON.stringify(value, null, 2)}\n`);
}
