import type { Tensor } from "../tensor/tensor.ts";
import { asLayout, type HookModel, OPTIONAL_HOOKS, parseHookName, validateHookName } from "./hook-points.ts";

export interface HookContext {
  name: string;
  layer: number | null;
}
/** Sees an activation and may return a replacement of the same shape (or mutate it in place); returning nothing keeps it. */
// biome-ignore lint/suspicious/noConfusingVoidType: lets hooks be written as `(act) => { ... }` that return nothing.
export type HookFn = (activation: Tensor, ctx: HookContext) => Tensor | undefined | void;
export type HookTarget = string | ((name: string) => boolean);
export type HookSpec = readonly [HookTarget, HookFn];

/**
 * A module spliced into a hook point, as SAELens' HookedSAETransformer puts an SAE there: after the
 * point's own hooks (and cache entry), `run` turns the activation into what the model continues with,
 * firing hook points of its own named `${hook}.${name}` (hookable and cachable like any other).
 */
export interface HookSplice {
  readonly hook: string;
  /** Its own hook points, in the order they fire (e.g. `hook_sae_input`, ...). */
  readonly hookNames: readonly string[];
  run(activation: Tensor, fire: (name: string, activation: Tensor) => Tensor): Tensor;
}

/**
 * The hooks and cache requests of one forward pass. Built per call, so nothing outlives the call:
 * hooks are "removed" by construction, also when one throws.
 */
export class HookDispatcher {
  private readonly byName = new Map<string, HookFn[]>();
  private readonly filters: { match: (n: string) => boolean; fn: HookFn }[] = [];
  readonly cache = new Map<string, Tensor>();

  /** `model`: its config (or hook layout); a bare layer count means a GPT-2 of that depth. */
  private readonly splices = new Map<string, HookSplice>();

  /** `splices`: modules spliced into hook points (SAEs), at most one per point. */
  constructor(
    model: HookModel,
    hooks: readonly HookSpec[] = [],
    private readonly cacheFilter: ((name: string) => boolean) | null = null,
    splices: readonly HookSplice[] = [],
  ) {
    const layout = hooks.length || splices.length ? asLayout(model) : null;
    const spliceNames = new Set<string>();
    for (const sp of splices) {
      validateHookName(sp.hook, layout!);
      if (this.splices.has(sp.hook))
        throw new Error(`Two modules are spliced into ${sp.hook}: attach one per hook`);
      this.splices.set(sp.hook, sp);
      for (const n of sp.hookNames) spliceNames.add(`${sp.hook}.${n}`);
    }
    for (const [target, fn] of hooks) {
      if (typeof target === "string") {
        if (!spliceNames.has(target)) validateHookName(target, layout!);
        const list = this.byName.get(target) ?? [];
        list.push(fn);
        this.byName.set(target, list);
      } else {
        this.filters.push({ match: target, fn });
      }
    }
  }

  /** Whether anything wants this point (lets the forward skip optional work such as per-head results). */
  wants(name: string): boolean {
    return (
      this.splices.has(name) ||
      this.byName.has(name) ||
      this.filters.some((f) => f.match(name)) ||
      (this.cacheFilter?.(name) ?? false)
    );
  }

  /** True when an optional hook (e.g. attn.hook_result) is requested by name for this layer. */
  wantsOptional(layer: number, hook: string): boolean {
    return OPTIONAL_HOOKS.has(hook) && this.wants(`blocks.${layer}.${hook}`);
  }

  fire(name: string, act: Tensor): Tensor {
    const direct = this.byName.get(name);
    let fns: HookFn[] | undefined = direct;
    if (this.filters.length) {
      const matched = this.filters.filter((f) => f.match(name)).map((f) => f.fn);
      if (matched.length) fns = [...(direct ?? []), ...matched];
    }
    if (fns) {
      const ctx: HookContext = { name, layer: parseHookName(name).layer };
      for (const fn of fns) {
        const out = fn(act, ctx);
        if (out) {
          if (out.shape.length !== act.shape.length || out.shape.some((d, i) => d !== act.shape[i])) {
            throw new Error(
              `Hook on ${name} returned shape [${out.shape.join(", ")}], expected [${act.shape.join(", ")}]`,
            );
          }
          act = out;
        }
      }
    }
    if (this.cacheFilter?.(name)) this.cache.set(name, act);
    const splice = this.splices.get(name);
    if (splice) {
      const out = splice.run(act, (sub, t) => this.fire(`${name}.${sub}`, t));
      if (out.shape.length !== act.shape.length || out.shape.some((d, i) => d !== act.shape[i])) {
        throw new Error(
          `The module spliced into ${name} returned shape [${out.shape.join(", ")}], expected [${act.shape.join(", ")}]`,
        );
      }
      return out;
    }
    return act;
  }
}

export function namesFilterFn(
  filter: readonly string[] | ((name: string) => boolean) | undefined,
  model: HookModel,
  splices: readonly HookSplice[] = [],
): (name: string) => boolean {
  // Default: every hook point TransformerLens would have, i.e. not the optional per-head results.
  if (filter === undefined) return (n) => !OPTIONAL_HOOKS.has(parseHookName(n).hook);
  if (typeof filter === "function") return filter;
  const layout = asLayout(model);
  const spliced = new Set(splices.flatMap((sp) => sp.hookNames.map((n) => `${sp.hook}.${n}`)));
  for (const n of filter) if (!spliced.has(n)) validateHookName(n, layout);
  const set = new Set(filter);
  return (n) => set.has(n);
}
