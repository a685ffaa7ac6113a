/**
 * TransformerLens hook-point names, the contract users script against (see
 * docs/transformerlens-semantics.md). Which of them a model has follows from its architecture
 * (`hookLayout`): rotary models add attn.hook_rot_q/k and have no hook_pos_embed; gated MLPs add
 * mlp.hook_pre_linear; norms after attention and the MLP (Gemma 2) add ln1_post.* and ln2_post.*; QK-norm
 * (Gemma 3) adds attn.q_norm.* and attn.k_norm.* (TransformerLens' names: its RMSNorm modules q_norm and
 * k_norm inside attn), between hook_q/hook_k (the projections) and hook_rot_q/hook_rot_k.
 */
import type { Architecture } from "../weights/config.ts";

export const BLOCK_HOOKS = [
  "hook_resid_pre",
  "ln1.hook_scale",
  "ln1.hook_normalized",
  "attn.hook_q",
  "attn.hook_k",
  "attn.hook_v",
  "attn.q_norm.hook_scale",
  "attn.q_norm.hook_normalized",
  "attn.k_norm.hook_scale",
  "attn.k_norm.hook_normalized",
  "attn.hook_rot_q",
  "attn.hook_rot_k",
  "attn.hook_attn_scores",
  "attn.hook_pattern",
  "attn.hook_z",
  "attn.hook_result",
  "ln1_post.hook_scale",
  "ln1_post.hook_normalized",
  "hook_attn_out",
  "hook_resid_mid",
  "ln2.hook_scale",
  "ln2.hook_normalized",
  "mlp.hook_pre",
  "mlp.hook_pre_linear",
  "mlp.hook_post",
  "ln2_post.hook_scale",
  "ln2_post.hook_normalized",
  "hook_mlp_out",
  "hook_resid_post",
] as const;
export type BlockHook = (typeof BLOCK_HOOKS)[number];

/** Off by default in TransformerLens (`use_attn_result`): computed only when a hook or the cache asks for it. */
export const OPTIONAL_HOOKS: ReadonlySet<string> = new Set(["attn.hook_result"]);

export function blockHookName(layer: number, hook: BlockHook): string {
  return `blocks.${layer}.${hook}`;
}

/** The hook points one model has. */
export interface HookLayout {
  nLayers: number;
  /** Per block, in forward order. */
  blockHooks: readonly BlockHook[];
  /** Outside the blocks: before them, then after. */
  preHooks: readonly string[];
  postHooks: readonly string[];
}

/** What decides a model's hook points: its depth and architecture (a ModelConfig is one). */
export type LayoutSource = Pick<Architecture, "positions" | "gatedMlp" | "postNorms" | "qkNorm"> & {
  nLayers: number;
};
/** A model config, or a layout already derived from one. */
export type HookModel = LayoutSource | HookLayout;

/** The hook points of a model with this architecture (a depth alone does not say which). */
export function hookLayout(a: LayoutSource): HookLayout {
  const rotary = a.positions === "rotary";
  const blockHooks = BLOCK_HOOKS.filter(
    (h) =>
      (rotary || (h !== "attn.hook_rot_q" && h !== "attn.hook_rot_k")) &&
      (a.gatedMlp || h !== "mlp.hook_pre_linear") &&
      (a.postNorms === true || !h.includes("_post.")) &&
      (a.qkNorm === true || !/^attn\.(q|k)_norm\./.test(h)),
  );
  return {
    nLayers: a.nLayers,
    blockHooks,
    preHooks: rotary ? ["hook_embed"] : ["hook_embed", "hook_pos_embed"],
    postHooks: ["ln_final.hook_scale", "ln_final.hook_normalized"],
  };
}

/** Every hook name of a model, in forward order. */
export function allHookNames(model: HookModel, opts: { includeOptional?: boolean } = {}): string[] {
  const layout = asLayout(model);
  const names = [...layout.preHooks];
  for (let l = 0; l < layout.nLayers; l++) {
    for (const h of layout.blockHooks) {
      if (!opts.includeOptional && OPTIONAL_HOOKS.has(h)) continue;
      names.push(blockHookName(l, h));
    }
  }
  names.push(...layout.postHooks);
  return names;
}

export function asLayout(model: HookModel): HookLayout {
  return "blockHooks" in model ? model : hookLayout(model);
}

const SHORT_NAMES: Record<string, BlockHook> = {
  resid_pre: "hook_resid_pre",
  resid_mid: "hook_resid_mid",
  resid_post: "hook_resid_post",
  attn_out: "hook_attn_out",
  mlp_out: "hook_mlp_out",
  q: "attn.hook_q",
  k: "attn.hook_k",
  v: "attn.hook_v",
  z: "attn.hook_z",
  result: "attn.hook_result",
  attn_scores: "attn.hook_attn_scores",
  pattern: "attn.hook_pattern",
  attn: "attn.hook_pattern",
  rot_q: "attn.hook_rot_q",
  rot_k: "attn.hook_rot_k",
  pre: "mlp.hook_pre",
  pre_linear: "mlp.hook_pre_linear",
  post: "mlp.hook_post",
  // TransformerLens' get_act_name("scale", l) is ambiguous between ln1 and ln2: name the norm.
  ln1_scale: "ln1.hook_scale",
  ln1_normalized: "ln1.hook_normalized",
  ln2_scale: "ln2.hook_scale",
  ln2_normalized: "ln2.hook_normalized",
  ln1_post_scale: "ln1_post.hook_scale",
  ln1_post_normalized: "ln1_post.hook_normalized",
  ln2_post_scale: "ln2_post.hook_scale",
  ln2_post_normalized: "ln2_post.hook_normalized",
  q_norm_scale: "attn.q_norm.hook_scale",
  q_norm_normalized: "attn.q_norm.hook_normalized",
  k_norm_scale: "attn.k_norm.hook_scale",
  k_norm_normalized: "attn.k_norm.hook_normalized",
};
const GLOBAL_SHORT: Record<string, string> = {
  embed: "hook_embed",
  pos_embed: "hook_pos_embed",
  ln_final_scale: "ln_final.hook_scale",
};

/**
 * TransformerLens `utils.get_act_name`: (`resid_pre`, 5) → `blocks.5.hook_resid_pre`,
 * (`pattern`, 7) → `blocks.7.attn.hook_pattern`. Full names pass through (validated against `model`'s
 * hook points when given; a bare number is a GPT-2 of that depth).
 */
export function actName(name: string, layer?: number, model?: HookModel): string {
  const layout = model === undefined ? undefined : asLayout(model);
  const nLayers = layout?.nLayers;
  if (layer === undefined) {
    if (GLOBAL_SHORT[name]) return GLOBAL_SHORT[name];
    if (layout) validateHookName(name, layout);
    return name;
  }
  const hook = SHORT_NAMES[name] ?? (BLOCK_HOOKS as readonly string[]).find((h) => h === name);
  if (!hook) {
    const hint =
      name === "scale" || name === "normalized"
        ? ` ("${name}" alone is ambiguous: use ln1_${name} or ln2_${name})`
        : "";
    throw new Error(
      `Unknown short hook name "${name}"${hint}. Use one of: ${Object.keys(SHORT_NAMES).join(", ")}`,
    );
  }
  if (nLayers !== undefined && (layer < 0 || layer >= nLayers || !Number.isInteger(layer))) {
    throw new Error(`Layer ${layer} is out of range: the model has layers 0..${nLayers - 1}`);
  }
  return blockHookName(layer, hook);
}

export interface ParsedHookName {
  layer: number | null;
  hook: string;
}

export function parseHookName(name: string): ParsedHookName {
  const m = /^blocks\.(\d+)\.(.+)$/.exec(name);
  return m ? { layer: Number(m[1]), hook: m[2] } : { layer: null, hook: name };
}

/**
 * Throws a clear error (with the closest valid name) unless `name` is a hook point of this model (a
 * bare layer count: a GPT-2 of that depth).
 */
export function validateHookName(name: string, model: HookModel): void {
  const layout = asLayout(model);
  const { nLayers } = layout;
  const { layer, hook } = parseHookName(name);
  if (layer === null) {
    if (layout.preHooks.includes(hook) || layout.postHooks.includes(hook)) return;
  } else if ((layout.blockHooks as readonly string[]).includes(hook)) {
    if (layer < nLayers) return;
    throw new Error(
      `Unknown hook name "${name}": layer ${layer} does not exist (the model has layers 0..${nLayers - 1}).`,
    );
  }
  const candidates = allHookNames(
    { ...layout, nLayers: Math.min(nLayers, Math.max(1, (layer ?? 0) + 1)) },
    { includeOptional: true },
  );
  const closest = candidates.reduce(
    (best, c) => {
      const d = editDistance(name, c);
      return d < best.d ? { c, d } : best;
    },
    { c: candidates[0], d: Number.POSITIVE_INFINITY },
  ).c;
  throw new Error(
    `Unknown hook name "${name}". Did you mean "${closest}"? Hook names follow TransformerLens, e.g. ` +
      `"blocks.0.hook_resid_pre", "blocks.0.attn.hook_pattern", "blocks.0.mlp.hook_post", "ln_final.hook_scale".`,
  );
}

function editDistance(a: string, b: string): number {
  const prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    let diag = prev[0];
    prev[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const tmp = prev[j];
      prev[j] = Math.min(prev[j] + 1, prev[j - 1] + 1, diag + (a[i - 1] === b[j - 1] ? 0 : 1));
      diag = tmp;
    }
  }
  return prev[b.length];
}
