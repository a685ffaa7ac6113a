/** Neuron and feature pages as plain terminal text (the max-activating token of each example in [[brackets]]). */
import { preCapNote } from "../analysis/logit-attribution.ts";
import { formatToken } from "../tokenizer/format-token.ts";
import type { FeaturePageData } from "./feature-page.ts";
import type { NeuronExample, NeuronPageData, TokenEffect } from "./neuron-page.ts";

type IndexPart = NonNullable<NeuronPageData["index"]>;

function indexLines(
  ix: IndexPart,
  examples: readonly Pick<NeuronExample, "strTokens" | "window" | "position" | "value">[],
) {
  const lines = [
    `Index ${ix.dir}: ${ix.tokens} tokens of ${ix.corpus}; density ${(100 * ix.density).toFixed(2)}% of tokens > 0`,
    "Top examples:",
  ];
  examples.forEach((e, i) => {
    const [start, end] = e.window;
    const text = e.strTokens
      .slice(start, end)
      .map((s, j) => (start + j === e.position ? `[[${s}]]` : s))
      .join("")
      .replace(/\n/g, "\\n");
    lines.push(`  ${String(i + 1).padStart(2)}  ${e.value.toFixed(3).padStart(7)}  ${text}`);
  });
  return lines;
}

/** The logit effect's two lines, and preCapNote's sentence under them for a soft-capped model. */
function effectLines(
  effect: { top: TokenEffect[]; bottom: TokenEffect[] },
  finalSoftCap: number | null,
): string[] {
  const item = (t: { str: string; value: number }) => `${formatToken(t.str)} ${t.value.toFixed(3)}`;
  const note = preCapNote(finalSoftCap, "logit effects").trim();
  return [
    `Promotes:   ${effect.top.map(item).join(", ")}`,
    `Suppresses: ${effect.bottom.map(item).join(", ")}`,
    ...(note ? [note] : []),
  ];
}

function ownTextLines(own: { strTokens: string[]; activations: number[] }): string[] {
  return [
    "Your text:",
    ...own.strTokens.map(
      (s, i) => `  ${String(i).padStart(3)}  ${own.activations[i].toFixed(3).padStart(7)}  ${formatToken(s)}`,
    ),
  ];
}

export function formatNeuronPage(page: NeuronPageData): string {
  const lines = [`Neuron L${page.layer} N${page.neuron} of ${page.model}`];
  if (page.index) lines.push(...indexLines(page.index, page.index.examples));
  lines.push(...effectLines(page.logitEffect, page.finalSoftCap));
  if (page.ownText) lines.push(...ownTextLines(page.ownText));
  return `${lines.join("\n")}\n`;
}

/**
 * A feature's activation histogram in `rows` ranges of equal width, tokens with activation > 0 only: a feature
 * is 0 on most tokens, and those zeros share the first bin [0, width) with its smallest activations, so they
 * are taken out of it (tokens − positive tokens; SAE features are never negative).
 */
function featureHistogramLines(ix: IndexPart, rows = 10): string[] {
  const { lo, hi, bins, counts } = ix.histogram;
  const positive = Math.round(ix.density * ix.tokens);
  if (lo !== 0 || positive === 0) return [];
  const inBins = counts.slice(1, bins + 1);
  inBins[0] -= ix.tokens - positive;
  const per = Math.ceil(bins / rows);
  const width = ((hi - lo) / bins) * per;
  const grouped = Array.from({ length: Math.ceil(bins / per) }, (_, r) =>
    inBins.slice(r * per, (r + 1) * per).reduce((a, b) => a + b, 0),
  );
  const overflow = counts[bins + 1];
  const last = overflow > 0 ? grouped.length - 1 : grouped.findLastIndex((c) => c > 0);
  const most = Math.max(...grouped, overflow);
  const bar = (c: number) => "#".repeat(Math.ceil((30 * c) / most));
  const label = (a: number, b: number) => `[${a.toFixed(1)}, ${b.toFixed(1)})`.padEnd(12);
  const lines = [`Histogram of activations > 0 (${positive} tokens):`];
  for (let r = 0; r <= last; r++) {
    const a = lo + r * width;
    lines.push(
      `  ${r === 0 ? `(0, ${width.toFixed(1)})`.padEnd(12) : label(a, a + width)} ${String(grouped[r]).padStart(7)}  ${bar(grouped[r])}`,
    );
  }
  if (overflow > 0)
    lines.push(`  ${`>= ${hi.toFixed(1)}`.padEnd(12)} ${String(overflow).padStart(7)}  ${bar(overflow)}`);
  return lines;
}

export function formatFeaturePage(page: FeaturePageData): string {
  const transcoder = page.transcoderLayer !== undefined;
  const what = transcoder
    ? `Transcoder feature ${page.feature} of layer ${page.transcoderLayer} (${page.sae}, reading ${page.hook})`
    : `SAE feature ${page.feature} (${page.sae} at ${page.hook})`;
  const lines = [`${what}, model ${page.model}`];
  if (page.index)
    lines.push(...indexLines(page.index, page.index.examples), ...featureHistogramLines(page.index));
  else
    lines.push(
      `No feature index: top examples, density and histogram not computed (build one with index ${transcoder ? "--transcoders" : "--sae"}).`,
    );
  if (page.logitEffect) lines.push(...effectLines(page.logitEffect, page.finalSoftCap));
  if (page.ownText) lines.push(...ownTextLines(page.ownText));
  return `${lines.join("\n")}\n`;
}
