/** PatchResult → nested arrays, the CLI's JSON shapes and cell names. */
import { nest } from "../tensor/tensor.ts";
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

/** E.g. "layer 2, pos 5 ' friend'", "layer 1, head 3". */
export function locationLabel(r: PatchResult, index: readonly number[]): string {
  return r.axes
    .map((a, i) => {
      const tok = r.labels[i]?.[index[i]];
      return tok === undefined ? `${a} ${index[i]}` : `${a} ${index[i]} ${JSON.stringify(tok)}`;
    })
    .join(", ");
}
