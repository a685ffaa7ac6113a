/**
 * Loading a Hugging Face GPT-2 checkpoint directory (config.json + model.safetensors, or a sharded
 * model.safetensors.index.json) into float32 tensors keyed by HF names without the `transformer.`
 * prefix, e.g. "wte.weight", "h.0.attn.c_attn.weight". Only the tensors the model needs are read.
 */
import { existsSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { type GPT2Config, parseHfGpt2Config } from "./config.ts";
import {
  CONFIG_FILE,
  expectedGpt2Tensors,
  PYTORCH_FILES,
  WEIGHTS_FILE,
  WEIGHTS_INDEX_FILE,
} from "./gpt2-tensors.ts";
import { SafetensorsReader } from "./safetensors.ts";

export { makeRandomCheckpoint, type RandomCheckpointOptions } from "./random-checkpoint.ts";

export interface RawTensor {
  shape: number[];
  data: Float32Array;
}

export interface Checkpoint {
  config: GPT2Config;
  /** HF names without the `transformer.` prefix -> float32 data. */
  tensors: Map<string, RawTensor>;
  dir: string;
}

const CONVERT_HINT =
  "convert it once with Python: `from transformers import GPT2LMHeadModel; " +
  "GPT2LMHeadModel.from_pretrained(DIR).save_pretrained(OUT, safe_serialization=True)`";

/** Where a stored tensor lives: file (relative to the dir) and its name in that file. */
interface TensorLocation {
  file: string;
  storedName: string;
}

/** Reads and validates config.json in `dir`. */
export function loadConfig(dir: string): GPT2Config {
  const path = join(dir, CONFIG_FILE);
  if (!existsSync(path)) {
    throw new Error(
      `No ${CONFIG_FILE} in model directory ${dir}: a checkpoint directory needs config.json plus ` +
        `${WEIGHTS_FILE} (or ${WEIGHTS_INDEX_FILE} and its shards) — pass a Hugging Face GPT-2 directory ` +
        "or a hub name such as gpt2",
    );
  }
  let json: unknown;
  try {
    json = JSON.parse(readFileSync(path, "utf8"));
  } catch (err) {
    throw new Error(
      `Invalid model config ${path}: not valid JSON (${(err as Error).message}) — re-download it`,
    );
  }
  return parseHfGpt2Config(json, path);
}

/** Which weights files `dir` holds, as tensor name (prefix kept) -> location. */
function locateTensors(dir: string): Map<string, TensorLocation> {
  const indexPath = join(dir, WEIGHTS_INDEX_FILE);
  if (existsSync(join(dir, WEIGHTS_FILE))) {
    const reader = SafetensorsReader.open(join(dir, WEIGHTS_FILE));
    reader.close();
    return new Map(
      [...reader.tensors.keys()].map((name) => [name, { file: WEIGHTS_FILE, storedName: name }]),
    );
  }
  if (existsSync(indexPath)) {
    let index: unknown;
    try {
      index = JSON.parse(readFileSync(indexPath, "utf8"));
    } catch (err) {
      throw new Error(
        `Invalid weights index ${indexPath}: not valid JSON (${(err as Error).message}) — re-download it`,
      );
    }
    const weightMap = (index as { weight_map?: unknown } | null)?.weight_map;
    if (weightMap === null || typeof weightMap !== "object") {
      throw new Error(`Invalid weights index ${indexPath}: no "weight_map" object — re-download it`);
    }
    const locations = new Map<string, TensorLocation>();
    for (const [name, file] of Object.entries(weightMap as Record<string, unknown>)) {
      if (typeof file !== "string" || file.includes("..")) {
        throw new Error(`Invalid weights index ${indexPath}: bad file ${JSON.stringify(file)} for "${name}"`);
      }
      locations.set(name, { file, storedName: name });
    }
    return locations;
  }
  const pytorch = PYTORCH_FILES.filter((f) => existsSync(join(dir, f)));
  if (pytorch.length > 0) {
    throw new Error(
      `Model directory ${dir} has only ${pytorch.join(" / ")}: PyTorch pickle checkpoints are not supported ` +
        `(they can run arbitrary code and need PyTorch to read); ${CONVERT_HINT}`,
    );
  }
  throw new Error(
    `No weights in model directory ${dir}: expected ${WEIGHTS_FILE} or ${WEIGHTS_INDEX_FILE} — ` +
      "re-download the model (circuitscope download MODEL) or check the path",
  );
}

/**
 * Loads a GPT-2 checkpoint directory. Strips a `transformer.` prefix, ignores buffers
 * (`h.{l}.attn.bias`, `h.{l}.attn.masked_bias`) and the tied `lm_head.weight`, and checks every
 * expected tensor is present with the shape the config implies before reading any data.
 */
export function loadCheckpoint(dir: string): Checkpoint {
  if (!existsSync(dir) || !statSync(dir).isDirectory()) {
    throw new Error(
      `Model directory not found: ${dir} — pass a directory holding config.json + model.safetensors, ` +
        "or a hub name such as gpt2 (downloaded with circuitscope download gpt2)",
    );
  }
  const config = loadConfig(dir);
  const stored = locateTensors(dir);
  const expected = expectedGpt2Tensors(config);
  checkLayerCount(dir, config.nLayers, stored.keys());

  const byFile = new Map<string, { name: string; shape: number[]; storedName: string }[]>();
  for (const [name, shape] of expected) {
    const location = stored.get(name) ?? stored.get(`transformer.${name}`);
    if (!location) {
      const files = [...new Set([...stored.values()].map((l) => l.file))].join(", ");
      throw new Error(
        `Checkpoint ${dir} is missing tensor "${name}" (expected shape [${shape.join(", ")}]) in ` +
          `${files || WEIGHTS_FILE} — is this a GPT-2 checkpoint matching its config.json? ` +
          "Re-download it (circuitscope download MODEL)",
      );
    }
    const list = byFile.get(location.file) ?? [];
    list.push({ name, shape, storedName: location.storedName });
    byFile.set(location.file, list);
  }

  // Validate every shape first (cheap, header only), then read data file by file.
  const readers = new Map<string, SafetensorsReader>();
  try {
    for (const [file, wanted] of byFile) {
      const reader = SafetensorsReader.open(join(dir, file));
      readers.set(file, reader);
      for (const { shape, storedName } of wanted) {
        const info = reader.tensors.get(storedName);
        if (!info) {
          throw new Error(
            `Checkpoint ${dir}: ${WEIGHTS_INDEX_FILE} says "${storedName}" is in ${file}, but that file ` +
              "does not hold it — re-download the model (circuitscope download MODEL)",
          );
        }
        if (info.shape.length !== shape.length || info.shape.some((d, i) => d !== shape[i])) {
          throw new Error(
            `Checkpoint ${dir}: tensor "${storedName}" in ${file} has shape [${info.shape.join(", ")}], but ` +
              `config.json implies [${shape.join(", ")}] — the weights do not match the config; re-download the model`,
          );
        }
      }
    }
    const tensors = new Map<string, RawTensor>();
    for (const [file, wanted] of byFile) {
      const reader = readers.get(file)!;
      for (const { name, shape, storedName } of wanted) {
        const data = reader.readFloat32(storedName);
        checkFinite(dir, storedName, file, data);
        tensors.set(name, { shape, data });
      }
    }
    return { config, tensors, dir };
  } finally {
    for (const reader of readers.values()) reader.close();
  }
}

/** A checkpoint whose blocks outnumber config.json's layer count would silently lose layers. */
function checkLayerCount(dir: string, nLayer: number, storedNames: Iterable<string>): void {
  let highest = -1;
  let example = "";
  for (const name of storedNames) {
    const m = /(?:^|\.)(?:h|layers)\.(\d+)\./.exec(name);
    if (m && Number(m[1]) > highest) {
      highest = Number(m[1]);
      example = name;
    }
  }
  if (highest >= nLayer) {
    throw new Error(
      `Checkpoint ${dir}: config.json says ${nLayer} layers, but the weights hold ${highest + 1} ` +
        `(e.g. "${example}") — the config does not match the weights; fix n_layer in config.json or re-download the model`,
    );
  }
}

/** NaN or infinite weights would turn every output into NaN; name the tensor instead. */
function checkFinite(dir: string, name: string, file: string, data: Float32Array): void {
  for (let i = 0; i < data.length; i++) {
    if (!Number.isFinite(data[i])) {
      throw new Error(
        `Checkpoint ${dir}: tensor "${name}" in ${file} holds ${data[i]} at flat index ${i} — the weights are ` +
          "damaged (or were saved after a diverged training run); re-download or re-export the model",
      );
    }
  }
}
