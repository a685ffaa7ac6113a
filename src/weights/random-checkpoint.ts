/**
 * Writes a random but valid Hugging Face GPT-2 checkpoint directory, for tests and benchmarks
 * (no real weights can be downloaded here). Seeded, so the same options give the same bytes.
 */
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { writeFileAtomic } from "../util/atomic-write.ts";
import { mulberry32, randn } from "../util/random.ts";
import { type GPT2Config, toHfGpt2ConfigJson } from "./config.ts";
import { CONFIG_FILE, expectedGpt2Tensors, WEIGHTS_FILE, WEIGHTS_INDEX_FILE } from "./gpt2-tensors.ts";
import { type SafetensorsWriteDtype, writeSafetensors } from "./safetensors.ts";

export interface RandomCheckpointOptions {
  seed?: number;
  dtype?: SafetensorsWriteDtype;
  /** Store names as `transformer.wte.weight` etc. (as GPT2LMHeadModel state dicts do). */
  prefix?: boolean;
  /** Also store the `h.{l}.attn.bias` causal mask and `h.{l}.attn.masked_bias` buffers, and a tied `lm_head.weight`. */
  includeBuffers?: boolean;
  /** Split the weights over this many files with a model.safetensors.index.json (default 1: one file). */
  shards?: number;
  /** Standard deviation of weights and biases (default 0.02, GPT-2's init). */
  std?: number;
}

type TensorRecord = Record<string, { shape: number[]; data: Float32Array }>;

function randomTensors(config: GPT2Config, seed: number, std: number): TensorRecord {
  const rng = mulberry32(seed);
  const tensors: TensorRecord = {};
  for (const [name, shape] of expectedGpt2Tensors(config)) {
    const data = new Float32Array(shape.reduce((a, b) => a * b, 1));
    // LayerNorm gains near 1 (so activations keep their scale); everything else, biases included,
    // small and nonzero so a loader or model that ignores a tensor gives visibly different results.
    const isLnGain = /(^|\.)ln_(1|2|f)\.weight$/.test(name);
    for (let i = 0; i < data.length; i++) data[i] = isLnGain ? 1 + 0.1 * randn(rng) : std * randn(rng);
    tensors[name] = { shape, data };
  }
  return tensors;
}

function bufferTensors(config: GPT2Config, wte: Float32Array): TensorRecord {
  const n = config.nCtx;
  const tensors: TensorRecord = {};
  const mask = new Float32Array(n * n);
  for (let q = 0; q < n; q++) for (let k = 0; k <= q; k++) mask[q * n + k] = 1;
  for (let l = 0; l < config.nLayers; l++) {
    tensors[`h.${l}.attn.bias`] = { shape: [1, 1, n, n], data: mask };
    tensors[`h.${l}.attn.masked_bias`] = { shape: [], data: new Float32Array([-1e4]) };
  }
  tensors["lm_head.weight"] = { shape: [config.dVocab, config.dModel], data: wte };
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
 * Writes config.json and weights for `config` into `dir` (created if needed) and returns the float32
 * values written (before any F16/BF16 rounding), keyed by unprefixed name.
 */
export function makeRandomCheckpoint(
  dir: string,
  config: GPT2Config,
  opts: RandomCheckpointOptions = {},
): Map<string, { shape: number[]; data: Float32Array }> {
  const { seed = 0, dtype = "F32", prefix = false, includeBuffers = false, shards = 1, std = 0.02 } = opts;
  if (!Number.isInteger(shards) || shards < 1)
    throw new Error(`makeRandomCheckpoint: shards must be >= 1, got ${shards}`);
  mkdirSync(dir, { recursive: true });

  const weights = randomTensors(config, seed, std);
  const stored: TensorRecord = includeBuffers
    ? { ...weights, ...bufferTensors(config, weights["wte.weight"].data) }
    : { ...weights };
  const named: TensorRecord = {};
  for (const [name, tensor] of Object.entries(stored)) {
    // lm_head sits outside `transformer.` in GPT2LMHeadModel, so it never takes the prefix.
    named[prefix && name !== "lm_head.weight" ? `transformer.${name}` : name] = tensor;
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
  writeJsonAtomic(join(dir, CONFIG_FILE), toHfGpt2ConfigJson(config));
  return new Map(Object.entries(weights));
}

function writeJsonAtomic(path: string, value: unknown): void {
  writeFileAtomic(path, `${JSON.stringify(value, null, 2)}\n`);
}
