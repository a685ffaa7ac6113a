/**
 * Patch targets: what to patch, expanded into "sites" (one patched run each) that every patching
 * method executes the same way. A site is a hook point plus selectors into its per-prompt activation
 * (the hook's shape without the batch axis); `null` in a selector means every index on that axis.
 */
import { blockHookName, parseHookName, validateHookName } from "../model/hook-points.ts";
import type { HookSplice } from "../model/hooks.ts";
import { saeHookName, saeSplice } from "../sae/attach.ts";
import type { Sae } from "../sae/sae.ts";
import { stridesOf } from "../tensor/tensor.ts";
import type { ModelConfig } from "../weights/config.ts";

export const RESID_TARGETS = ["resid_pre", "resid_mid", "attn_out", "mlp_out"] as const;
export const HEAD_COMPONENTS = ["z", "q", "k", "v", "pattern"] as const;
export type ResidTarget = (typeof RESID_TARGETS)[number];
export type HeadComponent = (typeof HEAD_COMPONENTS)[number];

/** CLI names of the targets. */
export const TARGET_NAMES = [
  ...RESID_TARGETS,
  "head_z",
  "head_q",
  "head_k",
  "head_v",
  "head_pattern",
  "head_all",
  "neurons",
  "features",
] as const;

export type PatchTarget =
  /** [layer, pos]: one position of one layer's residual-stream-sized activation. */
  | { kind: ResidTarget }
  /**
   * [layer, head] over all positions, or [layer, pos, head] with perPosition (for `pattern`: per destination
   * position). `k` and `v` index key/value heads ([layer, kv_head] with grouped-query attention).
   */
  | { kind: "head"; component: HeadComponent; perPosition?: boolean }
  /**
   * [5, layer, head]: z, q, k, v, pattern over all positions (TransformerLens' `..._all_pos_every`). With
   * grouped-query attention the k and v cells of query head h patch the key/value head h reads, so query
   * heads sharing one show the same value.
   */
  | { kind: "head_all" }
  /**
   * Each `mlp.hook_post` unit, at every position or only at `pos`: of `layer` ([d_mlp]), or of every
   * layer ([layer, d_mlp]) when no layer is given.
   */
  | { kind: "neurons"; layer?: number; pos?: number }
  /**
   * [pos, feature]: each feature of an SAE (its `hook_sae_acts_post`) at each position, the SAE spliced
   * into its hook with its error term, so the unpatched run is exactly the model's. With `features`:
   * [feature], each listed feature at every position (cell i is features[i]).
   */
  | { kind: "features"; sae: Sae; features?: readonly number[] }
  /** [n_sets]: each set of indices of one hook patched together. */
  | { kind: "custom"; hook: string; indexSets: readonly (readonly Selector[])[] }
  /** [site]: sites on any hooks in one sweep, so the clean and corrupted runs are shared by all of them. */
  | { kind: "sites"; sites: readonly PatchSite[] };

/** One index per axis of the per-prompt activation; null = the whole axis. */
export type Selector = readonly (number | null)[];

export interface PatchSite {
  /** Full hook name, e.g. "blocks.3.attn.hook_z". */
  hook: string;
  /** Union of selected elements (patched together in one run). */
  selectors: readonly Selector[];
}

export interface PatchPlan {
  target: string;
  axes: string[];
  shape: number[];
  /** One site per result cell, in row-major order of `shape`. */
  sites: PatchSite[];
  /** The SAE whose hook points the sites read (`features`): every run splices it in with its error term. */
  sae?: Sae;
}

/** What every run of a plan splices into the model: its SAE with the error term, or nothing. */
export function planSplices(plan: Pick<PatchPlan, "sae">): HookSplice[] {
  return plan.sae ? [saeSplice(plan.sae, { useErrorTerm: true })] : [];
}

/** Per-prompt shape of a hook's activation for a prompt of `n` positions, and which axis is the position. */
export interface HookLayout {
  shape: number[];
  /** The (query) position axis; for attention patterns the key axis is the last one. */
  posAxis: number;
  /** Axes whose length is the number of positions (the key axis of patterns too). */
  lengthAxes: number[];
  /** Block the hook belongs to; `nLayers` for ln_final hooks, 0 for the embeddings. */
  layer: number;
}

/** `sae`: the SAE spliced in, whose own hook points (`<hook>.hook_sae_acts_post`, ...) are then laid out too. */
export function hookLayout(hook: string, cfg: ModelConfig, n: number, sae?: Sae): HookLayout {
  if (sae && hook.startsWith(`${sae.cfg.hookName}.hook_sae_`)) {
    // [pos, d_sae] codes, [pos, d_in] otherwise (a hook_z SAE reads its heads flattened).
    const width = /hook_sae_acts_(pre|post)$/.test(hook) ? sae.cfg.dSae : sae.cfg.dIn;
    return { ...hookLayout(sae.cfg.hookName, cfg, n), shape: [n, width], posAxis: 0, lengthAxes: [0] };
  }
  const { layer, hook: local } = parseHookName(hook);
  const { nHeads: H, nKvHeads: Hkv, dHead: dh, dModel: D, dMlp } = cfg;
  const l = layer ?? (local.startsWith("ln_final") ? cfg.nLayers : 0);
  const seq = (rest: number[]): HookLayout => ({
    shape: [n, ...rest],
    posAxis: 0,
    lengthAxes: [0],
    layer: l,
  });
  // QK-norm (attn.q_norm / attn.k_norm) normalises each head: a scale per head, d_head values per head.
  const qkNorm = /^attn\.(q|k)_norm\.hook_(scale|normalized)$/.exec(local);
  if (qkNorm) return seq([qkNorm[1] === "q" ? H : Hkv, qkNorm[2] === "scale" ? 1 : dh]);
  if (local.endsWith("hook_scale")) return seq([1]);
  if (/attn\.hook_(q|rot_q|z)$/.test(local)) return seq([H, dh]);
  if (/attn\.hook_(k|rot_k|v)$/.test(local)) return seq([Hkv, dh]);
  if (local === "attn.hook_result") return seq([H, D]);
  if (local === "attn.hook_pattern" || local === "attn.hook_attn_scores") {
    return { shape: [H, n, n], posAxis: 1, lengthAxes: [1, 2], layer: l };
  }
  if (/^mlp\.hook_(pre|pre_linear|post)$/.test(local)) return seq([dMlp]);
  return seq([D]);
}

/** One head's slice of a head component's hook: every position, or only (destination) position `pos`. */
export function headSite(opts: {
  layer: number;
  head: number;
  component: HeadComponent;
  pos?: number | null;
}): PatchSite {
  const { layer, head, component } = opts;
  const pos = opts.pos ?? null;
  checkIndex("layer", layer);
  checkIndex("head", head);
  checkIndex("pos", pos);
  return component === "pattern"
    ? { hook: blockHookName(layer, "attn.hook_pattern"), selectors: [[head, pos, null]] }
    : { hook: blockHookName(layer, `attn.hook_${component}`), selectors: [[pos, head, null]] };
}

/**
 * One part of query head `head`: its own q, z or pattern slice; for k and v, the slice of the key/value
 * head it reads (with grouped-query attention, shared by nHeads / nKvHeads query heads).
 */
export function queryHeadPartSite(
  cfg: { nHeads: number; nKvHeads: number },
  opts: { layer: number; head: number; component: HeadComponent; pos?: number | null },
): PatchSite {
  const kv = opts.component === "k" || opts.component === "v";
  return headSite({ ...opts, head: kv ? kvHeadOf(cfg, opts.head) : opts.head });
}

/** The key/value head query head `head` reads: nHeads / nKvHeads query heads share each (grouped-query attention). */
export function kvHeadOf(cfg: { nHeads: number; nKvHeads: number }, head: number): number {
  return Math.floor(head / (cfg.nHeads / cfg.nKvHeads));
}

/** The query heads reading the same key/value head as `head`, itself included, in order (just [head] without GQA). */
export function kvGroup(cfg: { nHeads: number; nKvHeads: number }, head: number): number[] {
  const size = cfg.nHeads / cfg.nKvHeads;
  const first = kvHeadOf(cfg, head) * size;
  return Array.from({ length: size }, (_, i) => first + i);
}

/** One MLP neuron (`mlp.hook_post` unit): at every position, or only at `pos`. */
export function neuronSite(opts: { layer: number; neuron: number; pos?: number | null }): PatchSite {
  checkIndex("layer", opts.layer);
  checkIndex("neuron", opts.neuron);
  checkIndex("pos", opts.pos ?? null);
  return { hook: blockHookName(opts.layer, "mlp.hook_post"), selectors: [[opts.pos ?? null, opts.neuron]] };
}

const RESID_HOOKS = {
  resid_pre: "hook_resid_pre",
  resid_mid: "hook_resid_mid",
  attn_out: "hook_attn_out",
  mlp_out: "hook_mlp_out",
} as const;

/**
 * A target from its CLI name (`resid_pre`, `head_z`, `head_all`, `neurons`, ...), the inverse of
 * `targetName`. `neurons` without a layer means every layer; `perPosition` applies to head targets;
 * `features` needs the SAE.
 */
export function targetFromName(
  name: string,
  opts: { layer?: number; pos?: number; perPosition?: boolean; sae?: Sae } = {},
): PatchTarget {
  if (!(TARGET_NAMES as readonly string[]).includes(name)) {
    throw new Error(`Unknown patching target "${name}": use one of ${TARGET_NAMES.join(", ")}`);
  }
  if (name === "neurons") return { kind: "neurons", layer: opts.layer, pos: opts.pos };
  if (name === "features") {
    if (!opts.sae) throw new Error("The features target patches an SAE's features: give the SAE (--sae DIR)");
    return { kind: "features", sae: opts.sae };
  }
  if (name === "head_all") return { kind: "head_all" };
  if (name.startsWith("head_")) {
    return { kind: "head", component: name.slice(5) as HeadComponent, perPosition: opts.perPosition };
  }
  return { kind: name as ResidTarget };
}

/** Display name of a target (the CLI's `--target` value). */
export function targetName(t: PatchTarget): string {
  if (t.kind === "head") return `head_${t.component}${t.perPosition ? "_by_pos" : ""}`;
  if (t.kind === "custom") return `custom:${t.hook}`;
  return t.kind;
}

/**
 * Expands a target for a batch whose longest prompt has `nPos` positions. Throws a clear error for a
 * layer, position or index out of range.
 */
export function planTarget(target: PatchTarget, cfg: ModelConfig, nPos: number): PatchPlan {
  const { nLayers: L, nHeads: H, dMlp } = cfg;
  const kv = (c: HeadComponent) => c === "k" || c === "v";
  // Key/value heads per layer for a component, and the head axis' name ("kv_head" when they are fewer).
  const heads = (c: HeadComponent) => (kv(c) ? cfg.nKvHeads : H);
  const headAxis = (c: HeadComponent) => (heads(c) < H ? "kv_head" : "head");
  const name = targetName(target);
  const sites: PatchSite[] = [];
  switch (target.kind) {
    case "resid_pre":
    case "resid_mid":
    case "attn_out":
    case "mlp_out":
      for (let l = 0; l < L; l++)
        for (let p = 0; p < nPos; p++)
          sites.push({ hook: blockHookName(l, RESID_HOOKS[target.kind]), selectors: [[p, null]] });
      return { target: name, axes: ["layer", "pos"], shape: [L, nPos], sites };
    case "head": {
      const c = target.component;
      const nh = heads(c);
      for (let layer = 0; layer < L; layer++) {
        if (target.perPosition) {
          for (let pos = 0; pos < nPos; pos++)
            for (let head = 0; head < nh; head++) sites.push(headSite({ layer, head, component: c, pos }));
        } else {
          for (let head = 0; head < nh; head++) sites.push(headSite({ layer, head, component: c }));
        }
      }
      return target.perPosition
        ? { target: name, axes: ["layer", "pos", headAxis(c)], shape: [L, nPos, nh], sites }
        : { target: name, axes: ["layer", headAxis(c)], shape: [L, nh], sites };
    }
    case "head_all":
      for (const component of HEAD_COMPONENTS)
        for (let layer = 0; layer < L; layer++)
          for (let head = 0; head < H; head++) sites.push(queryHeadPartSite(cfg, { layer, head, component }));
      return {
        target: name,
        axes: ["component", "layer", "head"],
        shape: [HEAD_COMPONENTS.length, L, H],
        sites,
      };
    case "neurons": {
      if (target.layer !== undefined) checkRange("layer", target.layer, L, "--layer");
      if (target.pos !== undefined) checkRange("position", target.pos, nPos, "--pos");
      const layers = target.layer === undefined ? Array.from({ length: L }, (_, l) => l) : [target.layer];
      for (const layer of layers)
        for (let neuron = 0; neuron < dMlp; neuron++)
          sites.push(neuronSite({ layer, neuron, pos: target.pos }));
      return target.layer === undefined
        ? { target: name, axes: ["layer", "neuron"], shape: [L, dMlp], sites }
        : { target: name, axes: ["neuron"], shape: [dMlp], sites };
    }
    case "features": {
      const { sae } = target;
      validateHookName(sae.cfg.hookName, cfg);
      const hook = saeHookName(sae, "hook_sae_acts_post");
      if (target.features) {
        for (const f of target.features) {
          checkRange("feature", f, sae.cfg.dSae, "a feature");
          sites.push({ hook, selectors: [[null, f]] });
        }
        return { target: name, axes: ["feature"], shape: [target.features.length], sites, sae };
      }
      for (let pos = 0; pos < nPos; pos++)
        for (let feature = 0; feature < sae.cfg.dSae; feature++)
          sites.push({ hook, selectors: [[pos, feature]] });
      return { target: name, axes: ["pos", "feature"], shape: [nPos, sae.cfg.dSae], sites, sae };
    }
    case "custom":
      target.indexSets.forEach((set, i) => {
        sites.push(checkedSite(target.hook, set, i, cfg, nPos));
      });
      return { target: name, axes: ["index_set"], shape: [target.indexSets.length], sites };
    case "sites":
      target.sites.forEach((site, i) => {
        sites.push(checkedSite(site.hook, site.selectors, i, cfg, nPos));
      });
      return { target: name, axes: ["site"], shape: [target.sites.length], sites };
  }
}

/** A site whose hook exists and whose selectors fit the hook's per-prompt shape (clear errors otherwise). */
function checkedSite(
  hook: string,
  selectors: readonly Selector[],
  i: number,
  cfg: ModelConfig,
  nPos: number,
): PatchSite {
  validateHookName(hook, cfg);
  const layout = hookLayout(hook, cfg, nPos);
  if (selectors.length === 0) throw new Error(`Index set ${i} for ${hook} is empty: give at least one index`);
  for (const sel of selectors) checkSelector(sel, layout.shape, hook);
  return { hook, selectors };
}

/**
 * Indices count from 0: a negative one would address memory before the slice (there is no Python-style
 * counting from the end), so it is refused wherever a site is built (one call per index: this runs for each of a sweep's sites). Upper bounds need the model and the
 * prompt length, which planTarget checks.
 */
function checkIndex(what: string, v: number | null): void {
  if (v !== null && (!Number.isInteger(v) || v < 0))
    throw new Error(
      `${what} ${v} is not an index: use a whole number from 0 (negative indices are not supported)`,
    );
}

function checkRange(what: string, v: number, n: number, fix: string): void {
  if (!Number.isInteger(v) || v < 0 || v >= n)
    throw new Error(`${what} ${v} is out of range: use ${fix} between 0 and ${n - 1}`);
}

function checkSelector(sel: Selector, shape: readonly number[], hook: string): void {
  if (sel.length !== shape.length) {
    throw new Error(
      `Index [${sel.join(", ")}] for ${hook} has ${sel.length} axes, but its per-prompt activation is [${shape.join(", ")}]: give one index (or null for all) per axis`,
    );
  }
  sel.forEach((ix, a) => {
    if (ix !== null && (!Number.isInteger(ix) || ix < 0 || ix >= shape[a])) {
      const why = ix < 0 ? " (indices count from 0; negative indices are not supported)" : "";
      throw new Error(`Index ${ix} on axis ${a} of ${hook} is out of range [0, ${shape[a]})${why}`);
    }
  });
}

/**
 * Flat offsets (into the per-prompt activation of `shape`) of every element the selectors pick, with
 * the position of each; elements beyond a shorter prompt's length are dropped (those padding positions
 * cannot influence the prompt's final real position).
 */
export function selectElements(
  selectors: readonly Selector[],
  layout: HookLayout,
): { offsets: Int32Array; positions: Int32Array } {
  const { shape, posAxis } = layout;
  const offsets: number[] = [];
  const positions: number[] = [];
  const seen = new Set<number>();
  const strides = stridesOf(shape);
  for (const sel of selectors) {
    if (sel.some((ix) => ix !== null && (!Number.isInteger(ix) || ix < 0)))
      throw new Error(`Index [${sel.join(", ")}] has a negative or fractional entry: indices count from 0`);
    if (sel.some((ix, a) => ix !== null && ix >= shape[a])) continue; // a padding position of a shorter prompt
    const walk = (axis: number, off: number, pos: number): void => {
      if (axis === shape.length) {
        if (!seen.has(off)) {
          seen.add(off);
          offsets.push(off);
          positions.push(pos);
        }
        return;
      }
      const fixed = sel[axis];
      const from = fixed ?? 0;
      const to = fixed === null ? shape[axis] : fixed + 1;
      for (let i = from; i < to; i++) walk(axis + 1, off + i * strides[axis], axis === posAxis ? i : pos);
    };
    walk(0, 0, 0);
  }
  return { offsets: Int32Array.from(offsets), positions: Int32Array.from(positions) };
}
