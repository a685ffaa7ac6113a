/** PatchResult → nested arrays and the CLI's JSON shapes. */
import type { PatchResult } from "./types.ts";

export type Nested = number | Nested[];

/** Flat row-major values over `shape` → nested arrays. */
export function nest(values: ArrayLike<number>, shape: readonly number[], offset = 0): Nested {
  if (shape.length === 0) return values[offset];
  const stride = shape.slice(1).reduce((a, b) => a * b, 1);
  return Array.from({ length: shape[0] }, (_, i) => nest(values, shape.slice(1), offset + i * stride));
}

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
