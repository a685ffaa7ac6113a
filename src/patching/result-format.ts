/** PatchResult → nested arrays, the CLI's JSON shapes and cell names. */
import { nest, unravelIndex } from "../tensor/tensor.ts";
import { formatToken } from "../tokenizer/format-token.ts";
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
  return out;
}

/** "L3, pos 5 ·they" style name of one cell from its flat index (CLI tables, captions, disagreements). */
export function cellLabel(r: PatchResult, flat: number): string {
  const index = unravelIndex(flat, r.shape);
  return r.axes
    .map((axis, a) => {
      const i = index[a];
      const label = r.labels[a]?.[i];
      if (axis === "layer") return `L${i}`;
      if (axis === "head") return `H${i}`;
      if (axis === "kv_head") return `KV${i}`;
      if (label === undefined) return `${axis} ${i}`;
      return axis === "component" ? label : `${axis} ${i} ${formatToken(label)}`;
    })
    .join(", ");
}
