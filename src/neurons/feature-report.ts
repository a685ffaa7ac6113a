/** A feature page as a self-contained HTML report: the neuron page's figures, plus quantile groups. */
import {
  type ReportOptions,
  type ReportSection,
  type SharedVizScript,
  writeHtmlReport,
} from "../viz/index.ts";
import type { FeaturePageData } from "./feature-page.ts";
import {
  examplesFigure,
  fmt,
  histogramSection,
  logitEffectSection,
  ownTextSection,
} from "./neuron-report.ts";

export function featureReport(page: FeaturePageData): ReportOptions {
  const tcLayer = page.transcoderLayer;
  // A transcoder feature is named as in the graph's node ids: layer, then feature.
  const name = tcLayer === undefined ? `F${page.feature}` : `L${tcLayer} F${page.feature}`;
  const kind = tcLayer === undefined ? "SAE" : "Transcoder set";
  const valueLabel = `${name} activation`;
  const sections: ReportSection[] = [
    {
      heading: "Inputs",
      text: `Model ${page.model}; ${kind} ${page.sae}${tcLayer === undefined ? "" : `, layer ${tcLayer}'s transcoder`} at ${page.hook}; feature ${page.feature}${page.index ? `; index ${page.index.dir} over ${page.index.corpus}` : "; no index (examples not computed)"}.`,
      figures: [],
    },
  ];
  if (page.index) {
    const ix = page.index;
    // One colour scale for every example on the page: the largest activation indexed.
    const max = Math.max(0, ...ix.examples.map((e) => e.value));
    if (ix.examples.length > 0) {
      sections.push({
        heading: "Top activating examples",
        text:
          `The ${ix.examples.length} tokens of ${ix.corpus} (${ix.tokens.toLocaleString("en-US")} tokens indexed) where this ` +
          `feature is largest, each with the text before it; colour is the activation at every token.`,
        figures: [
          {
            figure: examplesFigure(
              `${name}: top examples`,
              valueLabel,
              ix.examples,
              max,
              (e, i) => `#${i + 1}  ${fmt(e.value)}  (context ${e.contextId}, token ${e.position})`,
            ),
          },
        ],
      });
    }
    if (ix.quantileGroups) {
      const groups = [...ix.quantileGroups].reverse().filter((g) => g.examples.length > 0);
      sections.push({
        heading: "Quantile groups",
        text:
          `Examples drawn uniformly at random from equal bands of the feature's range (0, ${fmt(max)}], highest band first; ` +
          `band edges are rounded to the histogram's bins. Colours share the top examples' scale.`,
        figures: groups.map((g) => ({
          figure: examplesFigure(
            `${name}: activations in [${fmt(g.lo)}, ${fmt(g.hi)})${g.tokens === null ? "" : `, ${g.tokens.toLocaleString("en-US")} tokens`}`,
            valueLabel,
            g.examples,
            max,
            (e) => `${fmt(e.value)}  (context ${e.contextId}, token ${e.position})`,
          ),
        })),
      });
    }
    sections.push(histogramSection(name, ix));
  }
  if (page.logitEffect) {
    sections.push(
      logitEffectSection(name, page.logitEffect, {
        rowName: "W_dec[f]",
        text: "The tokens whose logits this feature's decoder direction raises most and lowers most, per unit of activation (W_dec[f] through the final norm's gain, @ W_U).",
        finalSoftCap: page.finalSoftCap,
      }),
    );
  } else {
    sections.push({
      heading: "Direct effect on the logits",
      text: `Not computed: ${page.hook} does not write the residual stream.`,
      figures: [],
    });
  }
  if (page.ownText) sections.push(ownTextSection(name, valueLabel, page.ownText));
  const title =
    tcLayer === undefined
      ? `SAE feature ${page.feature}`
      : `Transcoder feature ${page.feature} of layer ${tcLayer}`;
  return { title, subtitle: `${page.sae} · model ${page.model}`, sections };
}

/** Writes the page (with `vizScript`, as one of a set sharing a bundle file: `writeSharedVizScript`). */
export function writeFeatureReport(
  path: string,
  page: FeaturePageData,
  opts: { vizScript?: SharedVizScript } = {},
): void {
  writeHtmlReport(path, { ...featureReport(page), vizScript: opts.vizScript });
}
