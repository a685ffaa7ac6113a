/**
 * circuit-tracer cross-layer transcoders (CLTs): the features of layer l read that layer's MLP input, like a
 * per-layer transcoder's, and write to the MLP output of every layer l' ≥ l. Layer l' of the replacement
 * model is then b_dec[l'] + Σ_{l ≤ l'} Σ_f a_{l,f} · W_dec_l[f, l' − l] (+ its error node).
 *
 * On disk (circuit-tracer's `load_clt` / `CrossLayerTranscoder.to_safetensors`), beside a config.yaml:
 *
 *   model_kind: cross_layer_transcoder
 *   feature_input_hook: hook_resid_mid      block-relative hooks, as a transcoder set's
 *   feature_output_hook: hook_mlp_out
 *   model_name: owner/model                 (optional; names the scan)
 *   repo_id: owner/repo                     (optional: the files come through the hub; else they sit beside
 *   subfolder: path/in/repo                  the config, in `subfolder` if given)
 *   revision: main                          (optional, with repo_id)
 *
 *   W_enc_{i}.safetensors  W_enc_{i} [d_tc, d_model], b_enc_{i} [d_tc], b_dec_{i} [d_model] (layer i's decoder
 *                          bias), optional threshold_{i} [d_tc] (JumpReLU on every layer, else ReLU)
 *   W_dec_{i}.safetensors  W_dec_{i} [d_tc, n_layers − i, d_model]: row [f, k] is what feature f of layer i
 *                          writes into layer i + k per unit of activation
 *
 * The number of layers is W_dec_0's second dimension. circuit-tracer's CLT files carry no skip connection.
 */
import { existsSync } from "node:fs";
import { join, resolve } from "node:path";
import { stringify } from "yaml";
import { resolveRepoFolder } from "../hub/resolve.ts";
import type { HubOptions } from "../hub/settings.ts";
import { writeFileAtomic } from "../util/atomic-write.ts";
import { SafetensorsReader, writeSafetensors } from "../weights/safetensors.ts";
import {
  bad,
  CROSS_LAYER_KIND,
  readTensor,
  TRANSCODER_SET_CONFIG,
  type Transcoder,
  type TranscoderSet,
} from "./transcoder-set.ts";

const encoderFile = (i: number) => `W_enc_${i}.safetensors`;
const decoderFile = (i: number) => `W_dec_${i}.safetensors`;

/** A tensor read as float32 with its shape checked, refused if it holds NaN or ±Infinity. */
function finiteTensor(reader: SafetensorsReader, name: string, shape: number[], what: string): Float32Array {
  const data = readTensor(reader, name, shape, what);
  const i = data.findIndex((v) => !Number.isFinite(v));
  if (i >= 0) {
    throw new Error(
      `${reader.path}: ${name} (${what}) holds ${data[i]} at flat index ${i} — the file is damaged or ` +
        "was saved from a diverged run; re-export the cross-layer transcoder",
    );
  }
  return data;
}

function withReader<T>(path: string, read: (reader: SafetensorsReader) => T): T {
  const reader = SafetensorsReader.open(path);
  try {
    return read(reader);
  } finally {
    reader.close();
  }
}

/** The number of layers and features, from W_dec_0 [d_tc, n_layers, d_model]. */
function decoderShape(path: string): { nLayers: number; dTranscoder: number; dModel: number } {
  return withReader(path, (reader) => {
    const info = reader.tensors.get("W_dec_0");
    if (info?.shape.length !== 3) {
      throw new Error(
        `${path}: needs a 3-D tensor W_dec_0 [d_transcoder, n_layers, d_model] — is this a circuit-tracer ` +
          "cross-layer transcoder?",
      );
    }
    const [dTranscoder, nLayers, dModel] = info.shape;
    return { nLayers, dTranscoder, dModel };
  });
}

/** Where the CLT's files are: beside the config (or in its subfolder), or fetched through the hub. */
async function clFolder(
  configPath: string,
  config: Record<string, unknown>,
  hub: HubOptions,
): Promise<string> {
  const subfolder = typeof config.subfolder === "string" ? config.subfolder : "";
  if (typeof config.repo_id !== "string") {
    const dir = join(resolve(configPath, ".."), subfolder);
    if (!existsSync(join(dir, decoderFile(0)))) {
      throw bad(
        configPath,
        `no ${decoderFile(0)} in ${dir}: a cross-layer transcoder's files W_enc_{i}.safetensors and ` +
          "W_dec_{i}.safetensors sit beside its config.yaml (or in `subfolder`), or give `repo_id` to fetch them",
      );
    }
    return dir;
  }
  const repo = config.repo_id;
  const opts = { ...hub, ...(typeof config.revision === "string" ? { revision: config.revision } : {}) };
  // W_dec_0 says how many layers there are; then every layer's pair of files.
  const first = await resolveRepoFolder(
    repo,
    subfolder,
    { required: [encoderFile(0), decoderFile(0)] },
    opts,
  );
  const { nLayers } = decoderShape(join(first, decoderFile(0)));
  const names = Array.from({ length: nLayers }, (_, i) => [encoderFile(i), decoderFile(i)]).flat();
  return resolveRepoFolder(repo, subfolder, { required: names }, opts);
}

/** Reads a cross-layer transcoder whose config.yaml (already parsed, hooks checked) is `config`. */
export async function loadCrossLayerTranscoder(
  configPath: string,
  config: Record<string, unknown>,
  hub: HubOptions = {},
): Promise<TranscoderSet> {
  const dir = await clFolder(configPath, config, hub);
  const { nLayers: L, dTranscoder, dModel } = decoderShape(join(dir, decoderFile(0)));
  if (L < 1 || dTranscoder < 1 || dModel < 1)
    throw bad(configPath, `${decoderFile(0)} has an empty W_dec_0 [${dTranscoder}, ${L}, ${dModel}]`);
  if (existsSync(join(dir, encoderFile(L)))) {
    throw bad(
      configPath,
      `${dir} holds ${encoderFile(L)}, but W_dec_0 writes to ${L} layers (0..${L - 1}): ` +
        "the files are from different cross-layer transcoders",
    );
  }
  const jump = withReader(join(dir, encoderFile(0)), (r) => r.tensors.has("threshold_0"));
  const transcoders: Transcoder[] = [];
  for (let i = 0; i < L; i++) {
    for (const file of [encoderFile(i), decoderFile(i)]) {
      if (!existsSync(join(dir, file))) {
        throw bad(
          configPath,
          `layer ${i} is missing: no ${file} in ${dir} (W_dec_0 writes to ${L} layers, and each needs ` +
            `${encoderFile(i)} and ${decoderFile(i)})`,
        );
      }
    }
    const enc = withReader(join(dir, encoderFile(i)), (r) => {
      const threshold = r.tensors.has(`threshold_${i}`);
      if (threshold !== jump) {
        throw bad(
          configPath,
          `${encoderFile(i)} ${threshold ? "has" : "lacks"} threshold_${i} but layer 0 ${jump ? "has" : "lacks"} ` +
            "threshold_0: JumpReLU thresholds are on every layer or on none",
        );
      }
      return {
        wEnc: finiteTensor(r, `W_enc_${i}`, [dTranscoder, dModel], "the encoder, one row per feature"),
        bEnc: finiteTensor(r, `b_enc_${i}`, [dTranscoder], "the encoder bias"),
        bDec: finiteTensor(r, `b_dec_${i}`, [dModel], `the decoder bias of layer ${i}'s MLP output`),
        threshold: threshold
          ? finiteTensor(r, `threshold_${i}`, [dTranscoder], "the JumpReLU thresholds")
          : null,
      };
    });
    const wDec = withReader(join(dir, decoderFile(i)), (r) =>
      finiteTensor(
        r,
        `W_dec_${i}`,
        [dTranscoder, L - i, dModel],
        `the decoder of layer ${i}'s features into layers ${i}..${L - 1}`,
      ),
    );
    transcoders.push({ layer: i, dModel, dTranscoder, ...enc, wDec, wSkip: null });
  }
  const modelName = typeof config.model_name === "string" ? config.model_name : null;
  const prefix = modelName ? `${modelName.split("/").at(-1)}/` : "";
  return {
    featureInputHook: config.feature_input_hook as string,
    featureOutputHook: config.feature_output_hook as string,
    modelName,
    ids: transcoders.map((_, i) => `${prefix}clt_layer_${i}`),
    transcoders,
    crossLayer: true,
  };
}

/** config.yaml, W_enc_{i}.safetensors and W_dec_{i}.safetensors of a cross-layer transcoder, into `dir`. */
export function writeCrossLayerFiles(dir: string, set: TranscoderSet): void {
  const L = set.transcoders.length;
  const jump = set.transcoders[0].threshold !== null;
  set.transcoders.forEach((tc, i) => {
    if (tc.wSkip) throw new Error(`layer ${i}: circuit-tracer's cross-layer transcoder files have no W_skip`);
    if ((tc.threshold !== null) !== jump)
      throw new Error(
        `layer ${i}: JumpReLU thresholds must be on every layer of a cross-layer transcoder or none`,
      );
    const { dTranscoder: F, dModel: D } = tc;
    const enc: Record<string, { shape: number[]; data: Float32Array }> = {
      [`W_enc_${i}`]: { shape: [F, D], data: tc.wEnc },
      [`b_enc_${i}`]: { shape: [F], data: tc.bEnc },
      [`b_dec_${i}`]: { shape: [D], data: tc.bDec },
    };
    if (tc.threshold) enc[`threshold_${i}`] = { shape: [F], data: tc.threshold };
    writeSafetensors(join(dir, encoderFile(i)), enc, "F32");
    writeSafetensors(
      join(dir, decoderFile(i)),
      { [`W_dec_${i}`]: { shape: [F, L - i, D], data: tc.wDec } },
      "F32",
    );
  });
  const config = {
    model_kind: CROSS_LAYER_KIND,
    ...(set.modelName ? { model_name: set.modelName } : {}),
    feature_input_hook: set.featureInputHook,
    feature_output_hook: set.featureOutputHook,
  };
  writeFileAtomic(join(dir, TRANSCODER_SET_CONFIG), stringify(config));
}
