/**
 * circuit-tracer transcoder sets: a `config.yaml` naming one transcoder per layer, each a safetensors file.
 *
 *   model_kind: transcoder_set          (optional; if present it must be this)
 *   model_name: owner/model             (optional; names the scan)
 *   feature_input_hook: ln2.hook_normalized     block-relative TransformerLens hook the features read
 *   feature_output_hook: hook_mlp_out           block-relative hook the transcoder replaces
 *   transcoders:                        one per layer 0..L-1: a path, or {id?, layer, filepath}
 *     - layer_0.safetensors             relative to the config, absolute, or hf://owner/repo/file[?revision=R]
 *
 * Each file: W_enc [d_tc, d_model] (circuit-tracer's layout, transposed against SAELens'), W_dec [d_tc, d_model],
 * b_enc [d_tc], b_dec [d_model], optional activation_function.threshold ([d_tc] or one value: JumpReLU, else
 * ReLU), optional W_skip [d_model, d_model] (the skip term is W_skip · input).
 */
import { existsSync, readFileSync, statSync } from "node:fs";
import { basename, dirname, isAbsolute, join, resolve } from "node:path";
import { parse, stringify } from "yaml";
import { resolveRepoFolder } from "../hub/resolve.ts";
import type { HubOptions } from "../hub/settings.ts";
import { writeFileAtomic } from "../util/atomic-write.ts";
import { writeReportDir } from "../util/report-dir.ts";
import { SafetensorsReader, writeSafetensors } from "../weights/safetensors.ts";

export const TRANSCODER_SET_CONFIG = "config.yaml";
/** circuit-tracer's model_kind of a cross-layer transcoder (src/graphs/cross-layer-transcoder.ts). */
export const CROSS_LAYER_KIND = "cross_layer_transcoder";

export interface Transcoder {
  layer: number;
  dModel: number;
  dTranscoder: number;
  /** [d_tc, d_model]: row f is feature f's encoder direction. */
  wEnc: Float32Array;
  /** [d_tc, d_model]: row f is what feature f writes per unit of activation. */
  wDec: Float32Array;
  /** [d_tc] */
  bEnc: Float32Array;
  /** [d_model] */
  bDec: Float32Array;
  /** [d_tc] JumpReLU thresholds; null for ReLU. */
  threshold: Float32Array | null;
  /** [d_model, d_model] (out = W_skip · input); null without a skip connection. */
  wSkip: Float32Array | null;
}

export interface TranscoderSet {
  featureInputHook: string;
  featureOutputHook: string;
  modelName: string | null;
  /** One id per layer (circuit-tracer's scan list: "{model}/{id}"). */
  ids: string[];
  /** Indexed by layer. */
  transcoders: Transcoder[];
  /**
   * A cross-layer transcoder (circuit-tracer's `model_kind: cross_layer_transcoder`, src/graphs/
   * cross-layer-transcoder.ts): `transcoders[l].wDec` is then [d_tc, L − l, d_model], feature f of layer l
   * writing `wDec[f, l' − l]` into the MLP output of every layer l' ≥ l. Absent: one transcoder per layer.
   */
  crossLayer?: true;
}

/** How many layers the features of layer `l` write to: 1, or every layer from l up for a cross-layer transcoder. */
export function decoderLayers(set: TranscoderSet, l: number): number {
  return set.crossLayer ? set.transcoders.length - l : 1;
}

/** Feature f of layer l's write into layer `into` per unit of activation ([d_model], a view of W_dec). */
export function decoderRow(set: TranscoderSet, l: number, f: number, into: number): Float32Array {
  const tc = set.transcoders[l];
  const D = tc.dModel;
  const k = into - l;
  const nOut = decoderLayers(set, l);
  if (k < 0 || k >= nOut)
    throw new Error(`decoderRow: layer ${l}'s features do not write into layer ${into}`);
  const o = (f * nOut + k) * D;
  return tc.wDec.subarray(o, o + D);
}

/** Refuses a cross-layer transcoder where only per-layer transcoders are supported, naming `what`. */
export function requirePerLayerSet(set: TranscoderSet, what: string): void {
  if (set.crossLayer) {
    throw new Error(
      `${what} supports per-layer transcoder sets only, not a cross-layer transcoder: ` +
        "use a transcoder_set (one transcoder per layer) for it",
    );
  }
}

export function bad(configPath: string, what: string): Error {
  return new Error(`Transcoder set ${configPath}: ${what}`);
}

interface LayerEntry {
  layer: number;
  id: string;
  path: string;
}

function layerEntries(configPath: string, raw: unknown): LayerEntry[] {
  if (!Array.isArray(raw) || raw.length === 0) {
    throw bad(
      configPath,
      "`transcoders` must be a non-empty list of per-layer files (a path, or {layer, filepath})",
    );
  }
  const entries = raw.map((item, i): LayerEntry => {
    if (typeof item === "string") return { layer: i, id: `layer_${i}`, path: item };
    const o = item as { layer?: unknown; filepath?: unknown; id?: unknown } | null;
    if (o && typeof o === "object" && Number.isInteger(o.layer) && typeof o.filepath === "string") {
      return {
        layer: o.layer as number,
        id: typeof o.id === "string" ? o.id : `layer_${o.layer}`,
        path: o.filepath,
      };
    }
    throw bad(
      configPath,
      `transcoders[${i}] must be a path or {layer: N, filepath: PATH}, got ${JSON.stringify(item)}`,
    );
  });
  entries.sort((a, b) => a.layer - b.layer);
  entries.forEach((e, i) => {
    if (e.layer !== i) {
      throw bad(
        configPath,
        `needs exactly one transcoder for each layer 0..${entries.length - 1}, ` +
          `but layer ${i} ${e.layer < i ? "appears twice" : "is missing"}`,
      );
    }
  });
  return entries;
}

/** Where a transcoder file is on disk: a local path (relative to the config), or fetched through the hub. */
async function localFile(configPath: string, path: string, hub: HubOptions): Promise<string> {
  if (path.startsWith("hf://")) {
    const [location, query] = path.slice("hf://".length).split("?", 2);
    const parts = location.split("/");
    if (parts.length < 3 || parts.some((p) => p === "")) {
      throw bad(configPath, `${path} is not an hf://owner/repo/path/in/repo URI`);
    }
    const revision = query ? new URLSearchParams(query).get("revision") : null;
    const file = parts.slice(2).join("/");
    const folder = await resolveRepoFolder(
      parts.slice(0, 2).join("/"),
      dirname(file) === "." ? "" : dirname(file),
      { required: [basename(file)] },
      { ...hub, ...(revision ? { revision } : {}) },
    );
    return join(folder, basename(file));
  }
  const local = isAbsolute(path) ? path : resolve(dirname(configPath), path);
  if (!existsSync(local))
    throw bad(configPath, `transcoder file ${local} does not exist: check the path in the config`);
  return local;
}

/** Reads a float tensor as float32, checking its shape (null: any), naming `what` it is in the error. */
export function readTensor(
  reader: SafetensorsReader,
  name: string,
  shape: number[] | null,
  what: string,
): Float32Array {
  const info = reader.tensors.get(name);
  if (!info)
    throw new Error(`${reader.path}: no tensor "${name}" (${what}) — is this a circuit-tracer transcoder?`);
  if (shape && (info.shape.length !== shape.length || info.shape.some((d, i) => d !== shape[i]))) {
    throw new Error(`${reader.path}: ${name} has shape [${info.shape}], expected [${shape}] (${what})`);
  }
  return reader.readFloat32(name);
}

/** Reads one transcoder file (circuit-tracer's layout) for `layer`. */
export function readTranscoder(path: string, layer: number): Transcoder {
  const reader = SafetensorsReader.open(path);
  try {
    const enc = reader.tensors.get("W_enc");
    if (enc?.shape.length !== 2) {
      throw new Error(
        `${path}: needs a 2-D tensor W_enc [d_transcoder, d_model] — is this a circuit-tracer transcoder?`,
      );
    }
    const [dTranscoder, dModel] = enc.shape;
    const wEnc = readTensor(reader, "W_enc", [dTranscoder, dModel], "the encoder");
    const wDec = readTensor(reader, "W_dec", [dTranscoder, dModel], "the decoder, one row per feature");
    const bEnc = readTensor(reader, "b_enc", [dTranscoder], "the encoder bias");
    const bDec = readTensor(reader, "b_dec", [dModel], "the decoder bias");
    let threshold: Float32Array | null = null;
    const t = reader.tensors.get("activation_function.threshold");
    if (t) {
      const values = reader.readFloat32("activation_function.threshold");
      if (values.length === 1) threshold = new Float32Array(dTranscoder).fill(values[0]);
      else if (values.length === dTranscoder) threshold = values;
      else {
        throw new Error(
          `${path}: activation_function.threshold has ${values.length} values, expected 1 or d_transcoder = ${dTranscoder}`,
        );
      }
    }
    const wSkip = reader.tensors.has("W_skip")
      ? readTensor(reader, "W_skip", [dModel, dModel], "the skip connection")
      : null;
    return { layer, dModel, dTranscoder, wEnc, wDec, bEnc, bDec, threshold, wSkip };
  } finally {
    reader.close();
  }
}

/** Loads a transcoder set from a directory holding config.yaml, or from the config file itself. */
export async function loadTranscoderSet(dirOrConfig: string, hub: HubOptions = {}): Promise<TranscoderSet> {
  const configPath =
    existsSync(dirOrConfig) && statSync(dirOrConfig).isDirectory()
      ? join(resolve(dirOrConfig), TRANSCODER_SET_CONFIG)
      : resolve(dirOrConfig);
  if (!existsSync(configPath)) {
    // circuit-tracer's load_clt takes a bare directory of W_enc_{i}/W_dec_{i} files; here the hooks must be named.
    const bareClt = existsSync(join(dirname(configPath), "W_dec_0.safetensors"));
    throw new Error(
      `Transcoder set: ${configPath} does not exist — --transcoders takes a directory holding ${TRANSCODER_SET_CONFIG} ` +
        "(circuit-tracer's transcoder set) or the config file itself" +
        (bareClt
          ? `; this directory holds cross-layer transcoder files: add a ${TRANSCODER_SET_CONFIG} with ` +
            `model_kind: ${CROSS_LAYER_KIND}, feature_input_hook and feature_output_hook`
          : ""),
    );
  }
  let config: Record<string, unknown>;
  try {
    config = parse(readFileSync(configPath, "utf8")) as Record<string, unknown>;
  } catch (err) {
    throw bad(configPath, `is not valid YAML (${(err as Error).message.split("\n")[0]})`);
  }
  if (!config || typeof config !== "object" || Array.isArray(config))
    throw bad(configPath, "must be a YAML mapping");
  if (
    config.model_kind !== undefined &&
    config.model_kind !== "transcoder_set" &&
    config.model_kind !== CROSS_LAYER_KIND
  ) {
    throw bad(
      configPath,
      `model_kind is ${JSON.stringify(config.model_kind)}; supported are "transcoder_set" (one transcoder per ` +
        `layer) and "${CROSS_LAYER_KIND}"`,
    );
  }
  for (const key of ["feature_input_hook", "feature_output_hook"]) {
    if (typeof config[key] !== "string" || config[key] === "") {
      throw bad(
        configPath,
        `needs ${key}: a block-relative TransformerLens hook name such as ln2.hook_normalized`,
      );
    }
  }
  const modelName = typeof config.model_name === "string" ? config.model_name : null;
  if (config.model_kind === CROSS_LAYER_KIND) {
    const { loadCrossLayerTranscoder } = await import("./cross-layer-transcoder.ts");
    return loadCrossLayerTranscoder(configPath, config, hub);
  }
  const entries = layerEntries(configPath, config.transcoders);
  const transcoders: Transcoder[] = [];
  for (const entry of entries) {
    const tc = readTranscoder(await localFile(configPath, entry.path, hub), entry.layer);
    if (transcoders.length > 0 && tc.dModel !== transcoders[0].dModel) {
      throw bad(
        configPath,
        `layer ${entry.layer} has d_model ${tc.dModel} but layer 0 has ${transcoders[0].dModel}`,
      );
    }
    transcoders.push(tc);
  }
  const prefix = modelName ? `${modelName.split("/").at(-1)}/` : "";
  return {
    featureInputHook: config.feature_input_hook as string,
    featureOutputHook: config.feature_output_hook as string,
    modelName,
    ids: entries.map((e) => `${prefix}${e.id}`),
    transcoders,
  };
}

/** Writes `set` as a circuit-tracer transcoder set directory (config.yaml + layer_{i}.safetensors), atomically. */
export async function writeTranscoderSet(
  dir: string,
  set: TranscoderSet,
  opts: {
    overwrite?: boolean;
    flag?: string;
    command?: string;
    /** Writes files of the caller's beside the set's (e.g. training logs), inside the same atomic swap. */
    extra?: (dir: string) => void;
  } = {},
): Promise<void> {
  const writeFiles = set.crossLayer
    ? (await import("./cross-layer-transcoder.ts")).writeCrossLayerFiles
    : writePerLayerFiles;
  await writeReportDir(
    dir,
    { overwrite: opts.overwrite, flag: opts.flag ?? "--out", command: opts.command ?? "transcoders" },
    (tmp) => {
      writeFiles(tmp, set);
      opts.extra?.(tmp);
    },
  );
}

/** config.yaml and layer_{i}.safetensors of a per-layer set, into `dir`. */
function writePerLayerFiles(dir: string, set: TranscoderSet): void {
  const files = set.transcoders.map((tc, layer) => {
    const file = `layer_${layer}.safetensors`;
    const tensors: Record<string, { shape: number[]; data: Float32Array }> = {
      W_enc: { shape: [tc.dTranscoder, tc.dModel], data: tc.wEnc },
      W_dec: { shape: [tc.dTranscoder, tc.dModel], data: tc.wDec },
      b_enc: { shape: [tc.dTranscoder], data: tc.bEnc },
      b_dec: { shape: [tc.dModel], data: tc.bDec },
    };
    if (tc.threshold)
      tensors["activation_function.threshold"] = { shape: [tc.dTranscoder], data: tc.threshold };
    if (tc.wSkip) tensors.W_skip = { shape: [tc.dModel, tc.dModel], data: tc.wSkip };
    writeSafetensors(join(dir, file), tensors, "F32");
    return { id: set.ids[layer]?.split("/").at(-1) ?? `layer_${layer}`, layer, filepath: file };
  });
  const config = {
    model_kind: "transcoder_set",
    ...(set.modelName ? { model_name: set.modelName } : {}),
    feature_input_hook: set.featureInputHook,
    feature_output_hook: set.featureOutputHook,
    transcoders: files,
  };
  writeFileAtomic(join(dir, TRANSCODER_SET_CONFIG), stringify(config));
}

/** Feature activations of one position: JumpReLU (x > θ keeps x) or ReLU of W_enc · input + b_enc. */
export function encodeTranscoder(tc: Transcoder, input: Float32Array): Float32Array {
  if (input.length !== tc.dModel)
    throw new Error(`encodeTranscoder: input has ${input.length} values, d_model is ${tc.dModel}`);
  const out = new Float32Array(tc.dTranscoder);
  for (let f = 0; f < tc.dTranscoder; f++) {
    let pre = tc.bEnc[f];
    const row = f * tc.dModel;
    for (let d = 0; d < tc.dModel; d++) pre += tc.wEnc[row + d] * input[d];
    const cut = tc.threshold ? tc.threshold[f] : 0;
    out[f] = pre > cut ? pre : 0;
  }
  return out;
}
