/**
 * SAELens directories, read and written: `cfg.json`, `sae_weights.safetensors` (SAELens' tensor names),
 * optional `sparsity.safetensors` (tensor `sparsity`: log10 feature density, [d_sae]) and
 * `activation_scaler.json` (`{"scaling_factor": s}`, used with normalize_activations
 * expected_average_only_in). Everything is checked before a weight is handed to the kernels.
 */
import { existsSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import type { Kernels } from "../tensor/kernels.ts";
import { collectGarbage } from "../util/collect-garbage.ts";
import { writeReportDir } from "../util/report-dir.ts";
import { SafetensorsReader, type SafetensorsWriteDtype, writeSafetensors } from "../weights/safetensors.ts";
import { Sae, type SaeWeights, saeTensorShapes } from "./sae.ts";
import { parseSaeConfig, type SaeConfig, saeConfigToJson } from "./sae-config.ts";

export const SAE_CFG_FILE = "cfg.json";
export const SAE_WEIGHTS_FILE = "sae_weights.safetensors";
export const SAE_SPARSITY_FILE = "sparsity.safetensors";
export const SAE_SCALER_FILE = "activation_scaler.json";

/** Reads and checks `cfg.json` only: cheap, so a bad SAE is refused before a model loads. */
export function readSaeConfig(dir: string): SaeConfig {
  const abs = resolve(dir);
  if (!existsSync(abs) || !statSync(abs).isDirectory()) {
    throw new Error(
      `SAE directory ${abs} does not exist: pass an SAELens directory (cfg.json + ${SAE_WEIGHTS_FILE}) or a hub id with its folder, e.g. owner/repo/blocks.8.hook_resid_pre`,
    );
  }
  const path = join(abs, SAE_CFG_FILE);
  if (!existsSync(path)) {
    throw new Error(
      `${abs} has no ${SAE_CFG_FILE}: an SAELens directory holds ${SAE_CFG_FILE} + ${SAE_WEIGHTS_FILE}`,
    );
  }
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(path, "utf8"));
  } catch (err) {
    throw new Error(`SAE config ${path} is not valid JSON (${(err as Error).message})`);
  }
  return parseSaeConfig(raw, path);
}

/**
 * An SAELens directory as an Sae: tensors checked against the config (names, shapes, finite values),
 * converted from F32/F16/BF16 to float32.
 */
export function loadSaeLensDir(dir: string, opts: { kernels: Kernels; cfg?: SaeConfig }): Sae {
  const abs = resolve(dir);
  const cfg = opts.cfg ?? readSaeConfig(abs);
  const weightsPath = join(abs, SAE_WEIGHTS_FILE);
  if (!existsSync(weightsPath)) {
    throw new Error(
      `${abs} has ${SAE_CFG_FILE} but no ${SAE_WEIGHTS_FILE}: copy or download the SAE's weights too`,
    );
  }
  const weights = readTensors(weightsPath, saeTensorShapes(cfg)) as unknown as SaeWeights;
  let logSparsity: Float32Array | null = null;
  const sparsityPath = join(abs, SAE_SPARSITY_FILE);
  if (existsSync(sparsityPath)) {
    // log10 density is -inf for a feature that never fired: only NaN is refused here.
    logSparsity = readTensors(sparsityPath, new Map([["sparsity", [cfg.dSae]]]), {
      allowInfinite: true,
    }).sparsity;
  }
  const sae = new Sae({
    cfg,
    weights,
    kernels: opts.kernels,
    logSparsity,
    scalingFactor: readScaler(abs, cfg),
  });
  // A backend that copied W_enc (onnxruntime) leaves ours dead: collect it now, or V8, blind to the
  // backend's memory, keeps the SAE's largest matrix twice for a long while.
  if (sae.heldBytes > 0 && cfg.dIn * cfg.dSae * 4 >= LARGE_BYTES) collectGarbage();
  return sae;
}

/** Above this size a dropped W_enc is collected at once. */
const LARGE_BYTES = 16 * 2 ** 20;

function readScaler(dir: string, cfg: SaeConfig): number {
  if (cfg.normalizeActivations === "none") return 1;
  const path = join(dir, SAE_SCALER_FILE);
  if (!existsSync(path)) {
    throw new Error(
      `${dir}: normalize_activations is expected_average_only_in but ${SAE_SCALER_FILE} is missing — ` +
        'add it ({"scaling_factor": s}) or fold the factor into the weights (W_enc·s, W_dec/s, b_dec/s) and set normalize_activations "none"',
    );
  }
  let s: unknown;
  try {
    s = (JSON.parse(readFileSync(path, "utf8")) as { scaling_factor?: unknown }).scaling_factor;
  } catch (err) {
    throw new Error(`${path} is not valid JSON (${(err as Error).message})`);
  }
  if (typeof s !== "number" || !Number.isFinite(s) || s <= 0) {
    throw new Error(`${path}: "scaling_factor" must be a positive number, got ${JSON.stringify(s)}`);
  }
  return s;
}

function readTensors(
  path: string,
  shapes: ReadonlyMap<string, number[]>,
  opts: { allowInfinite?: boolean } = {},
): Record<string, Float32Array> {
  const reader = SafetensorsReader.open(path);
  try {
    const missing = [...shapes.keys()].filter((n) => !reader.tensors.has(n));
    if (missing.length) {
      throw new Error(
        `${path} lacks ${missing.join(", ")} (it has ${[...reader.tensors.keys()].join(", ") || "no tensors"}): ` +
          "is the config's architecture right for these weights?",
      );
    }
    const out: Record<string, Float32Array> = {};
    for (const [name, shape] of shapes) {
      const info = reader.tensors.get(name)!;
      if (info.shape.length !== shape.length || info.shape.some((d, i) => d !== shape[i])) {
        throw new Error(
          `${path}: tensor ${name} is [${info.shape.join(", ")}] but the config (d_in, d_sae) needs [${shape.join(", ")}]`,
        );
      }
      if (!["F32", "F16", "BF16"].includes(info.dtype)) {
        throw new Error(`${path}: tensor ${name} is ${info.dtype}; SAE weights must be F32, F16 or BF16`);
      }
      const data = reader.readFloat32(name);
      const badAt = data.findIndex((v) => Number.isNaN(v) || (!opts.allowInfinite && !Number.isFinite(v)));
      if (badAt >= 0) {
        throw new Error(
          `${path}: tensor ${name} holds a non-finite value (${data[badAt]} at element ${badAt})`,
        );
      }
      out[name] = data;
    }
    return out;
  } finally {
    reader.close();
  }
}

/** What a SAELens directory holds, for `writeSaeLensDir`. */
export interface SaeLensDirContents {
  cfg: SaeConfig;
  weights: SaeWeights;
  /** Stored dtype of the weights (default F32); cfg.json's `dtype` says the same. */
  dtype?: SafetensorsWriteDtype;
  /** log10 feature density [d_sae] → sparsity.safetensors. */
  logSparsity?: Float32Array;
  /** → activation_scaler.json (needed with normalize_activations expected_average_only_in). */
  scalingFactor?: number;
}

const DTYPE_NAMES: Record<SafetensorsWriteDtype, string> = {
  F32: "float32",
  F16: "float16",
  BF16: "bfloat16",
};

/**
 * Writes a SAELens-6 directory that `SAE.load_from_disk` loads: built beside `dir` and renamed into
 * place; an existing `dir` is replaced only if circuitscope wrote it and `overwrite` is set (its marker
 * file is the report marker, which SAELens ignores).
 */
export async function writeSaeLensDir(
  dir: string,
  contents: SaeLensDirContents,
  opts: { overwrite?: boolean; flag?: string; command?: string } = {},
): Promise<void> {
  const { weights } = contents;
  const dtype = contents.dtype ?? "F32";
  const cfg: SaeConfig = { ...contents.cfg, dtype: DTYPE_NAMES[dtype] };
  const shapes = saeTensorShapes(cfg);
  const tensors: Record<string, { shape: number[]; data: Float32Array }> = {};
  for (const [name, shape] of shapes) {
    const data = weights[name];
    if (!data) throw new Error(`writeSaeLensDir: a ${cfg.architecture} SAE needs tensor ${name}`);
    tensors[name] = { shape, data };
  }
  if (cfg.normalizeActivations === "expected_average_only_in" && contents.scalingFactor === undefined) {
    throw new Error("writeSaeLensDir: normalize_activations expected_average_only_in needs a scalingFactor");
  }
  await writeReportDir(
    dir,
    { overwrite: opts.overwrite, flag: opts.flag ?? "--out", command: opts.command ?? "writeSaeLensDir" },
    (tmp) => {
      writeFileSync(join(tmp, SAE_CFG_FILE), `${JSON.stringify(saeConfigToJson(cfg), null, 2)}\n`);
      writeSafetensors(join(tmp, SAE_WEIGHTS_FILE), tensors, dtype);
      if (contents.logSparsity) {
        writeSafetensors(
          join(tmp, SAE_SPARSITY_FILE),
          { sparsity: { shape: [cfg.dSae], data: contents.logSparsity } },
          "F32",
        );
      }
      if (contents.scalingFactor !== undefined) {
        writeFileSync(
          join(tmp, SAE_SCALER_FILE),
          `${JSON.stringify({ scaling_factor: contents.scalingFactor })}\n`,
        );
      }
    },
  );
}
