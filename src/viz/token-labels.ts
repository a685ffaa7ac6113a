/**
 * Token labels for figures. Tokens are written by `formatToken` (src/tokenizer/format-token.ts), the one
 * formatter used by figures, captions, CLI tables and the explorer.
 */
import { formatToken } from "../tokenizer/format-token.ts";

export { formatToken };

/** The same as `formatToken` (the name figures used first). */
export const displayToken = formatToken;

/** Axis labels for token positions: always `i: token`, so repeated tokens stay distinct and positions are readable. */
export function tokenPositionLabels(tokens: readonly string[]): string[] {
  return tokens.map((t, i) => `${i}: ${formatToken(t)}`);
}

/**
 * Position labels for a clean/corrupted pair: `i: clean` where both runs have the same token, and
 * `i: clean / corrupted` where they differ, so the positions that matter are named with both tokens.
 */
export function pairPositionLabels(clean: readonly string[], corrupted: readonly string[]): string[] {
  return clean.map((t, i) => {
    const c = corrupted[i];
    return c === undefined || c === t
      ? `${i}: ${formatToken(t)}`
      : `${i}: ${formatToken(t)} / ${formatToken(c)}`;
  });
}

/**
 * Makes axis labels distinct (a Vega ordinal scale merges equal strings): unchanged when already unique,
 * otherwise every label is prefixed with its index so the axis stays consistent.
 */
export function distinctLabels(labels: readonly string[]): string[] {
  if (new Set(labels).size === labels.length) return [...labels];
  return labels.map((l, i) => `${i}: ${l}`);
}
