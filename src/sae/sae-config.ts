/**
 * An SAE's configuration as plain data, and its SAELens `cfg.json` both ways. SAELens 6 writes
 * `architecture`, `d_in`, `d_sae`, `dtype`, `apply_b_dec_to_input`, `normalize_activations`,
 * `reshape_activations`, `k` (topk) and a `metadata` object holding `hook_name`, `model_name`, ...; older
 * SAELens (most SAEs published on the hub) keeps `hook_name` (or `hook_point`) at the top level and may say
 * `activation_fn: "topk"` with `activation_fn_kwargs.k` instead of `architecture: "topk"`. Both are read;
 * SAELens 6 is written.
 */

export const SAE_ARCHITECTURES = ["standard", "topk", "jumprelu", "gated"] as const;
export type SaeArchitecture = (typeof SAE_ARCHITECTURES)[number];
export const SAE_NORMALIZATIONS = ["none", "expected_average_only_in"] as const;
export type SaeNormalization = (typeof SAE_NORMALIZATIONS)[number];

export interface SaeConfig {
  architecture: SaeArchitecture;
  dIn: number;
  dSae: number;
  /** TopK's k (topk only). */
  k?: number;
  /** The dtype the file states (`float32`, `bfloat16`, ...); weights are computed with in float32. */
  dtype: string;
  applyBDecToInput: boolean;
  normalizeActivations: SaeNormalization;
  /** `hook_z`: an attention-output SAE reading `attn.hook_z` flattened to n_heads·d_head. */
  reshapeActivations: "none" | "hook_z";
  /** TransformerLens hook name the SAE reads, e.g. `blocks.2.hook_resid_pre`. */
  hookName: string;
  /** The rest of SAELens' metadata (model_name, prepend_bos, context_size, ...), kept as read. */
  metadata: Record<string, unknown>;
}

/** The SAELens version stated in what circuitscope writes: SAELens reads a config without one as pre-6. */
export const WRITTEN_SAELENS_VERSION = "6.0.0";

/** Metadata keys SAELens 6's `SAEMetadata` knows; older top-level keys of these names move into metadata. */
const METADATA_KEYS = [
  "model_name",
  "hook_name",
  "model_class_name",
  "hook_head_index",
  "model_from_pretrained_kwargs",
  "prepend_bos",
  "exclude_special_tokens",
  "neuronpedia_id",
  "context_size",
  "seqpos_slice",
  "dataset_path",
  "sae_lens_version",
  "sae_lens_training_version",
] as const;

function bad(where: string, what: string): Error {
  return new Error(`SAE config ${where}: ${what}`);
}

function positiveInt(v: unknown, key: string, where: string): number {
  if (typeof v !== "number" || !Number.isInteger(v) || v <= 0) {
    throw bad(where, `"${key}" must be a positive integer, got ${JSON.stringify(v)}`);
  }
  return v;
}

/**
 * Reads a parsed `cfg.json` (SAELens 6 or older). `where` names the file in errors. Throws a clear error
 * for an unknown architecture or normalisation, a missing hook name or size, or a setting circuitscope
 * does not compute (a head index, `rescale_acts_by_decoder_norm`).
 */
export function parseSaeConfig(raw: unknown, where = "cfg.json"): SaeConfig {
  if (typeof raw !== "object" || raw === null || Array.isArray(raw)) throw bad(where, "is not a JSON object");
  const c = raw as Record<string, unknown>;
  const meta =
    typeof c.metadata === "object" && c.metadata !== null
      ? { ...(c.metadata as Record<string, unknown>) }
      : {};
  // SAELens < 6: metadata keys at the top level, `hook_point` for `hook_name`.
  for (const key of METADATA_KEYS) if (meta[key] === undefined && c[key] !== undefined) meta[key] = c[key];
  if (meta.hook_name === undefined && c.hook_point !== undefined) meta.hook_name = c.hook_point;
  if (meta.hook_head_index === undefined && c.hook_point_head_index !== undefined)
    meta.hook_head_index = c.hook_point_head_index;
  const hookName = meta.hook_name;
  if (typeof hookName !== "string" || hookName === "") {
    throw bad(
      where,
      'names no hook: give "metadata": {"hook_name": "blocks.L.hook_resid_pre"} (or "hook_name")',
    );
  }
  if (meta.hook_head_index !== undefined && meta.hook_head_index !== null) {
    throw bad(
      where,
      `reads one head (hook_head_index ${meta.hook_head_index}), which circuitscope does not support`,
    );
  }

  const activationFn = c.activation_fn ?? c.activation_fn_str;
  let architecture = (c.architecture ?? "standard") as string;
  if (architecture === "standard" && activationFn === "topk") architecture = "topk";
  if (architecture === "batchtopk") {
    throw bad(
      where,
      'architecture "batchtopk" is a training architecture: SAELens saves a trained BatchTopK SAE as "jumprelu" ' +
        "(with its threshold); load that inference directory instead",
    );
  }
  if (!(SAE_ARCHITECTURES as readonly string[]).includes(architecture)) {
    throw bad(where, `unknown architecture "${architecture}": use one of ${SAE_ARCHITECTURES.join(", ")}`);
  }
  if (activationFn !== undefined && activationFn !== "relu" && activationFn !== "topk") {
    throw bad(where, `unknown activation_fn "${activationFn}": circuitscope reads relu and topk`);
  }
  if (c.rescale_acts_by_decoder_norm === true) {
    throw bad(where, "rescale_acts_by_decoder_norm is true, which circuitscope does not compute");
  }
  let k: number | undefined;
  if (architecture === "topk") {
    const kwargs = (c.activation_fn_kwargs ?? {}) as Record<string, unknown>;
    k = positiveInt(c.k ?? kwargs.k, "k", where);
  }

  let norm = c.normalize_activations;
  if (norm === undefined || norm === null || norm === false) norm = "none";
  if (norm === true) norm = "expected_average_only_in"; // SAELens' reading of the old boolean
  if (!(SAE_NORMALIZATIONS as readonly string[]).includes(norm as string)) {
    throw bad(
      where,
      `normalize_activations "${norm}" is not supported: circuitscope reads none and expected_average_only_in ` +
        "(with activation_scaler.json); fold the normalisation into the weights first",
    );
  }
  // SAELens < 6 infers hook_z reshaping from the hook name.
  const reshape = c.reshape_activations ?? (hookName.endsWith("hook_z") ? "hook_z" : "none");
  if (reshape !== "none" && reshape !== "hook_z") {
    throw bad(where, `unknown reshape_activations "${reshape}": use none or hook_z`);
  }
  if (reshape === "hook_z" && !hookName.endsWith("attn.hook_z")) {
    throw bad(where, `reshape_activations "hook_z" needs an attn.hook_z hook, not ${hookName}`);
  }
  const applyBDec = c.apply_b_dec_to_input ?? true;
  if (typeof applyBDec !== "boolean") throw bad(where, '"apply_b_dec_to_input" must be true or false');
  const { hook_name: _hook, ...rest } = meta;
  return {
    architecture: architecture as SaeArchitecture,
    dIn: positiveInt(c.d_in, "d_in", where),
    dSae: positiveInt(c.d_sae, "d_sae", where),
    ...(k === undefined ? {} : { k }),
    dtype: typeof c.dtype === "string" ? c.dtype : "float32",
    applyBDecToInput: applyBDec,
    normalizeActivations: norm as SaeNormalization,
    reshapeActivations: reshape,
    hookName,
    metadata: rest,
  };
}

/** The SAELens-6 `cfg.json` object of a config (what `SAE.load_from_disk` reads). */
export function saeConfigToJson(cfg: SaeConfig): Record<string, unknown> {
  const metadata: Record<string, unknown> = {};
  for (const key of METADATA_KEYS) if (cfg.metadata[key] !== undefined) metadata[key] = cfg.metadata[key];
  metadata.hook_name = cfg.hookName;
  metadata.sae_lens_version ??= WRITTEN_SAELENS_VERSION;
  metadata.sae_lens_training_version ??= WRITTEN_SAELENS_VERSION;
  return {
    architecture: cfg.architecture,
    d_in: cfg.dIn,
    d_sae: cfg.dSae,
    dtype: cfg.dtype,
    device: "cpu",
    apply_b_dec_to_input: cfg.applyBDecToInput,
    normalize_activations: cfg.normalizeActivations,
    reshape_activations: cfg.reshapeActivations,
    ...(cfg.architecture === "topk" ? { k: cfg.k } : {}),
    metadata,
  };
}
