/**
 * Loading a Hugging Face checkpoint directory (config.json + model.safetensors, or a sharded
 * model.safetensors.index.json) into float32 tensors keyed by HF names (GPT-2's without the
 * `transformer.` prefix), e.g. "wte.weight", "model.layers.0.self_attn.q_proj.weight". Only the
 * tensors the model needs are read.
 */
import { existsSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { checkMemoryFits, formatBytes, memoryBudget } from "../util/memory-budget.ts";
import {
  CONFIG_FILE,
  PYTORCH_FILES,
  TOKENIZER_FILE,
  WEIGHTS_FILE,
  WEIGHTS_INDEX_FILE,
} from "./checkpoint-files.ts";
import type { ModelConfig } from "./config.ts";
import { familyOf, parseHfConfig, type RawTensor, type TensorSource } from "./families/index.ts";
import { SafetensorsReader } from "./safetensors.ts";

export { makeRandomCheckpoint, type RandomCheckpointOptions } from "./random-checkpoint.ts";
export type { RawTensor, TensorSource };

export interface Checkpoint {
  config: ModelConfig;
  /** HF names (GPT-2's without the `transformer.` prefix) -> float32 data. */
  tensors: Map<string, RawTensor>;
  dir: string;
}

const CONVERT_HINT =
  "convert it once with Python: `from transformers import AutoModelForCausalLM; " +
  "AutoModelForCausalLM.from_pretrained(DIR).save_pretrained(OUT, safe_serialization=True)`";

/** Where a stored tensor lives: file (relative to the dir) and its name in that file. */
interface TensorLocation {
  file: string;
  storedName: string;
}

/** Reads and validates config.json in `dir`. */
export function loadConfig(dir: string): ModelConfig {
  const path = join(dir, CONFIG_FILE);
  if (!existsSync(path)) {
    throw new Error(
      `No ${CONFIG_FILE} in model directory ${dir}: a checkpoint directory needs config.json plus ` +
        `${WEIGHTS_FILE} (or ${WEIGHTS_INDEX_FILE} and its shards) — pass a Hugging Face model directory ` +
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
  return parseHfConfig(json, path);
}

/**
 * Checks what a model needs besides its weights, before any weights are read: every family except GPT-2
 * (whose BPE ships with circuitscope) needs the checkpoint's tokenizer.json.
 */
export function checkTokenizerFiles(dir: string, config: ModelConfig): void {
  if (!familyOf(config).needsTokenizerFile || existsSync(join(dir, TOKENIZER_FILE))) return;
  throw new Error(
    `Model directory ${dir} has no ${TOKENIZER_FILE}: a ${familyOf(config).label}-family model ` +
      `(model_type "${config.modelType}") needs its tokenizer — copy tokenizer.json and tokenizer_config.json ` +
      "from the model's Hugging Face repo into the directory, or re-download it (circuitscope download MODEL)",
  );
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

export interface LoadCheckpointOptions {
  /**
   * Checked once the tensors' shapes are known and before any is read: the float32 weights times
   * `peakRatio` (what loading a model costs at its peak, measured per backend) must fit the memory
   * budget, else a MemoryBudgetError says so with the figures.
   */
  memory?: { peakRatio: number; limitBytes?: number };
}

/**
 * A validated checkpoint directory whose tensors are read one at a time, when a converter takes them (so a
 * model can be built block by block without ever holding all the float32 weights). Every tensor is checked
 * for NaN/infinity as it is read. Close it when done.
 * Strips GPT-2's `transformer.` prefix, ignores buffers (`h.{l}.attn.bias`, `h.{l}.attn.masked_bias`,
 * rotary caches) and a tied `lm_head.weight`, and checks every expected tensor is present with the shape
 * the config implies before reading any data.
 */
export interface OpenCheckpoint {
  config: ModelConfig;
  dir: string;
  source: TensorSource;
  close(): void;
}

export function openCheckpoint(dir: string, opts: LoadCheckpointOptions = {}): OpenCheckpoint {
  if (!existsSync(dir) || !statSync(dir).isDirectory()) {
    throw new Error(
      `Model directory not found: ${dir} — pass a directory holding config.json + model.safetensors, ` +
        "or a hub name such as gpt2 (downloaded with circuitscope download gpt2)",
    );
  }
  const config = loadConfig(dir);
  checkTokenizerFiles(dir, config);
  const family = familyOf(config);
  const stored = locateTensors(dir);
  // Before the expected tensors are listed: a config of 1e9 layers would list billions of names.
  checkLayerCount(dir, config.nLayers, stored.keys());
  const expected = family.expectedTensors(config);

  const wanted = new Map<string, { shape: number[]; file: string; storedName: string }>();
  for (const [name, shape] of expected) {
    const location =
      stored.get(name) ?? (family.optionalPrefix ? stored.get(family.optionalPrefix + name) : undefined);
    if (!location) {
      const files = [...new Set([...stored.values()].map((l) => l.file))].join(", ");
      throw new Error(
        `Checkpoint ${dir} is missing tensor "${name}" (expected shape [${shape.join(", ")}]) in ` +
          `${files || WEIGHTS_FILE} — is this a ${family.label} checkpoint matching its config.json? ` +
          "Re-download it (circuitscope download MODEL)",
      );
    }
    wanted.set(name, { shape, ...location });
  }

  // Validate every shape first (cheap, header only); data is read when taken.
  const readers = new Map<string, SafetensorsReader>();
  const close = () => {
    for (const reader of readers.values()) reader.close();
    readers.clear();
  };
  try {
    for (const { shape, file, storedName } of wanted.values()) {
      let reader = readers.get(file);
      if (!reader) {
        reader = SafetensorsReader.open(join(dir, file));
        readers.set(file, reader);
      }
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
    if (opts.memory) {
      let floats = 0;
      for (const shape of expected.values()) floats += shape.reduce((a, b) => a * b, 1);
      checkMemoryFits(
        [
          {
            what: `load the model (${opts.memory.peakRatio} × its ${formatBytes(floats * 4)} of float32 weights)`,
            bytes: floats * 4 * opts.memory.peakRatio,
          },
        ],
        memoryBudget(opts.memory.limitBytes),
        ["a smaller model", "close other programs", "--memory-limit if you know more memory is free"],
      );
    }
  } catch (err) {
    close();
    throw err;
  }
  const taken = new Set<string>();
  const source: TensorSource = {
    label: dir,
    take(name) {
      const w = wanted.get(name);
      if (!w) throw new Error(`Checkpoint ${dir} has no tensor "${name}"`);
      if (taken.has(name)) throw new Error(`Tensor "${name}" of checkpoint ${dir} was already taken`);
      taken.add(name);
      const reader = readers.get(w.file);
      if (!reader) throw new Error(`Checkpoint ${dir} is already closed`);
      const data = reader.readFloat32(w.storedName);
      checkFinite(dir, w.storedName, w.file, data);
      return { shape: w.shape, data };
    },
    stored(name) {
      const w = wanted.get(name);
      return w ? { path: join(dir, w.file), storedName: w.storedName } : null;
    },
  };
  return { config, dir, source, close };
}

/** Loads a whole checkpoint into memory (tests and tools that want every tensor by name). */
export function loadCheckpoint(dir: string, opts: LoadCheckpointOptions = {}): Checkpoint {
  const open = openCheckpoint(dir, opts);
  try {
    const tensors = new Map<string, RawTensor>();
    for (const name of familyOf(open.config).expectedTensors(open.config).keys()) {
      tensors.set(name, open.source.take(name));
    }
    return { config: open.config, tensors, dir };
  } finally {
    open.close();
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
  // No numbered layer at all: the missing-tensor check names what is expected.
  if (highest >= 0 && highest + 1 !== nLayer) {
    throw new Error(
      `Checkpoint ${dir}: config.json says ${nLayer} layers, but the weights hold ${highest + 1} ` +
        `(e.g. "${example}") — the config does not match the weights; fix the layer count in config.json ` +
        "(n_layer, or num_hidden_layers) or re-download the model",
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
