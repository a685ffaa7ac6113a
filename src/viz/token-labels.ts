/**
 * How tokens are shown in every figure, so one token reads the same on an axis, in a tooltip and in SVG:
 * spaces become `·` (GPT-2 tokens usually start with one, and an invisible leading space is a classic
 * source of confusion), newlines `↵`, tabs `⇥`; an empty token shows as `∅`.
 */
export function displayToken(token: string): string {
  if (token.length === 0) return "∅";
  return token.replace(/ /g, "·").replace(/\r?\n/g, "↵").replace(/\t/g, "⇥").replace(/\r/g, "↵");
}

/** Axis labels for token positions: always `i: token`, so repeated tokens stay distinct and positions are readable. */
export function tokenPositionLabels(tokens: readonly string[]): string[] {
  return tokens.map((t, i) => `${i}: ${displayToken(t)}`);
}

/**
 * Makes axis labels distinct (a Vega ordinal scale merges equal strings): unchanged when already unique,
 * otherwise every label is prefixed with its index so the axis stays consistent.
 */
export function distinctLabels(labels: readonly string[]): string[] {
  if (new Set(labels).size === labels.length) return [...labels];
  return labels.map((l, i) => `${i}: ${l}`);
}
