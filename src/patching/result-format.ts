/** PatchResult → nested arrays, the CLI's JSON shapes and cell names. */
import { nest, unravelIndex } from "../tensor/tensor.ts";
import { formatToken } from "../tokenizer/format-token.ts";
import { kvGroup, kvHeadOf } from "./targets.ts";
import type { PatchResult } from "./types.ts";

/** `{ target, clean, corrupted, axes, values }`: the stable JSON of `patch --json`. */
export function resultJson(r: PatchResult, opts: { perPrompt?: boolean } = {}): Record<string, unknown> {
  const out: Record<string, unknown> = {
    target: r.target,
    clean: r.clean,
    corrupted: r.corrupted,
    axes: r.axes,
    values: nest(r.values, r.shape),
  };
  if (opts.perPrompt) {
    const shape = [r.perPrompt.clean.length, ...r.shape];
    out.perPrompt = {
      clean: r.perPrompt.clean,
      corrupted: r.perPrompt.corrupted,
      raw: nest(r.perPrompt.raw, shape),
      values: nest(r.perPrompt.values, shape),
    };
  }
  if (r.kvGroupSize) {
    const nHeads = r.shape[r.shape.length - 1];
    const cfg = { nHeads, nKvHeads: nHeads / r.kvGroupSize };
    out.sharedKvHeads = {
      components: [...KV_COMPONENTS],
      groups: Array.from({ length: cfg.nKvHeads }, (_, kv) => kvGroup(cfg, kv * r.kvGroupSize!)),
      note: "grouped-query attention: the k and v cells of the query heads of one group patch one key/value head, so they hold one effect, repeated",
    };
  }
  return out;
}

const KV_COMPONENTS = ["k", "v"] as const;

/** Every field of a result as JSON (typed arrays as arrays): `patch --out`'s file. */
export function fullJson(r: PatchResult): Record<string, unknown> {
  return {
    ...r,
    values: [...r.values],
    raw: [...r.raw],
    perPrompt: { ...r.perPrompt, raw: [...r.perPrompt.raw], values: [...r.perPrompt.values] },
  };
}

/**
 * "L3, pos 5 ·they" style name of one cell from its flat index (CLI tables, captions, disagreements). A
 * head_all k or v cell of a grouped-query model names the key/value head and the query heads sharing it
 * ("v, L4, KV1 (H2+H3)"), so the cells of one group carry one name.
 */
export function cellLabel(r: PatchResult, flat: number): string {
  const index = unravelIndex(flat, r.shape);
  const component = r.axes[0] === "component" ? r.labels[0]?.[index[0]] : undefined;
  const sharedKv =
    r.kvGroupSize !== undefined && (KV_COMPONENTS as readonly string[]).includes(component ?? "");
  return r.axes
    .map((axis, a) => {
      const i = index[a];
      const label = r.labels[a]?.[i];
      if (axis === "layer") return `L${i}`;
      if (axis === "head" && sharedKv) {
        const nHeads = r.shape[a];
        const cfg = { nHeads, nKvHeads: nHeads / r.kvGroupSize! };
        return `KV${kvHeadOf(cfg, i)} (${kvGroup(cfg, i)
          .map((h) => `H${h}`)
          .join("+")})`;
      }
      if (axis === "head") return `H${i}`;
      if (axis === "kv_head") return `KV${i}`;
      if (label === undefined) return `${axis} ${i}`;
      return axis === "component" ? label : `${axis} ${i} ${formatToken(label)}`;
    })
    .join(", ");
}
