/** A neuron page as a self-contained HTML report, drawn with src/viz (token views and bar charts). */
import { preCapNote } from "../analysis/logit-attribution.ts";
import { formatToken } from "../tokenizer/format-token.ts";
import {
  barChart,
  type ReportOptions,
  type ReportSection,
  tokenView,
  writeHtmlReport,
} from "../viz/index.ts";
import type { NeuronExample, NeuronPageData } from "./neuron-page.ts";

export function fmt(x: number): string {
  return Number.isInteger(x) ? String(x) : x.toPrecision(3);
}

/** Token views of examples, coloured by the unit's activation on a shared 0 .. max scale. */
export function examplesFigure(
  title: string,
  valueLabel: string,
  examples: readonly NeuronExample[],
  max: number,
  label: (e: NeuronExample, i: number) => string,
) {
  return tokenView({
    title,
    valueLabel,
    scale: "sequential",
    domain: [0, max > 0 ? max : 1],
    samples: examples.map((e, i) => ({
      label: label(e, i),
      tokens: e.strTokens.slice(e.window[0], e.window[1]),
      values: e.activations.slice(e.window[0], e.window[1]),
    })),
  });
}

/** The activation histogram (non-empty bin range, log counts) and the density sentence. */
export function histogramSection(
  name: string,
  ix: { density: number; histogram: { lo: number; hi: number; bins: number; counts: number[] } },
): ReportSection {
  const { lo, hi, bins, counts } = ix.histogram;
  const width = (hi - lo) / bins;
  // Bins from the first to the last non-empty one; log scale so the rare high activations show.
  const first = counts.findIndex((c) => c > 0);
  const last = counts.length - 1 - [...counts].reverse().findIndex((c) => c > 0);
  const label = (i: number) =>
    i === 0
      ? `< ${fmt(lo)}`
      : i === bins + 1
        ? `>= ${fmt(hi)}`
        : `[${fmt(lo + (i - 1) * width)}, ${fmt(lo + i * width)})`;
  const range = first < 0 ? [] : Array.from({ length: last - first + 1 }, (_, j) => first + j);
  return {
    heading: "Activation distribution",
    text: `Density (fraction of tokens with activation > 0): ${(100 * ix.density).toFixed(2)}%.`,
    figures:
      range.length > 0
        ? [
            {
              figure: barChart({
                title: `${name}: activation histogram`,
                labels: range.map(label),
                values: range.map((i) => Math.log10(1 + counts[i])),
                labelTitle: "activation",
                valueTitle: "log10(1 + tokens)",
              }),
            },
          ]
        : [],
  };
}

/**
 * Bars of the most promoted and most suppressed tokens per unit of activation. For a soft-capped model the
 * value axis says "pre-cap" and the text ends with preCapNote's sentence.
 */
export function logitEffectSection(
  name: string,
  effect: NeuronPageData["logitEffect"],
  opts: { rowName: string; text: string; finalSoftCap: number | null },
): ReportSection {
  const note = preCapNote(opts.finalSoftCap, "logit effects");
  const chart = (title: string, list: NeuronPageData["logitEffect"]["top"]) =>
    barChart({
      title,
      labels: list.map((t) => formatToken(t.str)),
      values: list.map((t) => t.value),
      horizontal: true,
      labelTitle: "token",
      valueTitle: `${opts.rowName} @ W_U${note ? " (pre-cap logits)" : ""}`,
    });
  return {
    heading: "Direct effect on the logits",
    text: `${opts.text}${note}`,
    figures: [
      { figure: chart(`${name}: most promoted tokens`, effect.top) },
      { figure: chart(`${name}: most suppressed tokens`, effect.bottom) },
    ],
  };
}

/** The unit's activation on the user's text. */
export function ownTextSection(
  name: string,
  valueLabel: string,
  ownText: { strTokens: string[]; activations: number[] },
): ReportSection {
  return {
    heading: "Activation on your text",
    figures: [
      {
        figure: tokenView({
          title: `${name} on your text`,
          valueLabel,
          samples: [{ tokens: ownText.strTokens, values: ownText.activations }],
        }),
      },
    ],
  };
}

export function neuronReport(page: NeuronPageData): ReportOptions {
  const name = `L${page.layer} N${page.neuron}`;
  const valueLabel = `${name} activation`;
  const sections: ReportSection[] = [];

  if (page.index) {
    const ix = page.index;
    const maxValue = Math.max(0, ...ix.examples.map((e) => e.value));
    if (ix.examples.length > 0) {
      sections.push({
        heading: "Top activating examples",
        text:
          `The ${ix.examples.length} tokens of ${ix.corpus} (${ix.tokens.toLocaleString("en-US")} tokens indexed) where this ` +
          `neuron fires most, each shown with the text before it; colour is the activation at every token.`,
        figures: [
          {
            figure: examplesFigure(
              `${name}: top examples`,
              valueLabel,
              ix.examples,
              maxValue,
              (e, i) => `#${i + 1}  max ${fmt(e.value)}  (context ${e.contextId}, token ${e.position})`,
            ),
          },
        ],
      });
    }
    sections.push(histogramSection(name, ix));
  }

  sections.push(
    logitEffectSection(name, page.logitEffect, {
      rowName: "W_out[n]",
      text: "The tokens whose logits this neuron's output raises most and lowers most, per unit of activation (W_out[n] @ W_U).",
      finalSoftCap: page.finalSoftCap,
    }),
  );
  if (page.ownText) sections.push(ownTextSection(name, valueLabel, page.ownText));
  return { title: `Neuron ${name}`, subtitle: `Model ${page.model}`, sections };
}

export function writeNeuronReport(path: string, page: NeuronPageData): void {
  writeHtmlReport(path, neuronReport(page));
}
