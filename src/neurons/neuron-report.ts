/** A neuron page as a self-contained HTML report, drawn with src/viz (token views and bar charts). */
import { formatToken } from "../tokenizer/format-token.ts";
import {
  barChart,
  type ReportOptions,
  type ReportSection,
  tokenView,
  writeHtmlReport,
} from "../viz/index.ts";
import type { NeuronPageData } from "./neuron-page.ts";

function fmt(x: number): string {
  return Number.isInteger(x) ? String(x) : x.toPrecision(3);
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
            figure: tokenView({
              title: `${name}: top examples`,
              valueLabel,
              scale: "sequential",
              domain: [0, maxValue > 0 ? maxValue : 1],
              samples: ix.examples.map((e, i) => ({
                label: `#${i + 1}  max ${fmt(e.value)}  (context ${e.contextId}, token ${e.position})`,
                tokens: e.strTokens.slice(e.window[0], e.window[1]),
                values: e.activations.slice(e.window[0], e.window[1]),
              })),
            }),
          },
        ],
      });
    }
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
    sections.push({
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
    });
  }

  const effect = (title: string, list: NeuronPageData["logitEffect"]["top"]) =>
    barChart({
      title,
      labels: list.map((t) => formatToken(t.str)),
      values: list.map((t) => t.value),
      horizontal: true,
      labelTitle: "token",
      valueTitle: "W_out[n] @ W_U",
    });
  sections.push({
    heading: "Direct effect on the logits",
    text: "The tokens whose logits this neuron's output raises most and lowers most, per unit of activation (W_out[n] @ W_U).",
    figures: [
      { figure: effect(`${name}: most promoted tokens`, page.logitEffect.top) },
      { figure: effect(`${name}: most suppressed tokens`, page.logitEffect.bottom) },
    ],
  });

  if (page.ownText) {
    sections.push({
      heading: "Activation on your text",
      figures: [
        {
          figure: tokenView({
            title: `${name} on your text`,
            valueLabel,
            samples: [{ tokens: page.ownText.strTokens, values: page.ownText.activations }],
          }),
        },
      ],
    });
  }
  return { title: `Neuron ${name}`, subtitle: `Model ${page.model}`, sections };
}

export function writeNeuronReport(path: string, page: NeuronPageData): void {
  writeHtmlReport(path, neuronReport(page));
}
