import * as vega from "vega";
import { compile } from "vega-lite";
import type { ChartFigure, Figure } from "../figure.ts";
import { attentionSvg } from "../views/attention-svg.ts";
import { tokenViewSvg } from "../views/token-svg.ts";

/**
 * Vega numbers gradient ids with a process-wide counter; renumbering them per document makes the same
 * figure give byte-identical SVG on every export (diffable, cacheable).
 */
function renumberGradients(svg: string): string {
  const ids = new Map<string, string>();
  return svg.replace(/\bgradient_\d+\b/g, (id) => {
    if (!ids.has(id)) ids.set(id, `gradient_${ids.size + 1}`);
    return ids.get(id)!;
  });
}

/** Vega-Lite -> Vega, then Vega's headless renderer: no browser or canvas needed in Node. */
async function chartToSvg(fig: ChartFigure): Promise<string> {
  const vgSpec = compile(fig.spec).spec;
  const view = new vega.View(vega.parse(vgSpec), { renderer: "none", logLevel: vega.Warn });
  try {
    // Vega's default config already paints a white background, which papers and PNG export want.
    return renumberGradients(await view.toSVG());
  } finally {
    view.finalize();
  }
}

/** A standalone SVG document for any figure (for papers; convert with `svgToPng`). */
export async function figureToSvg(fig: Figure): Promise<string> {
  switch (fig.kind) {
    case "attention":
      return attentionSvg(fig.data, fig.title);
    case "tokens":
      return tokenViewSvg(fig.data, fig.title);
    default:
      return chartToSvg(fig);
  }
}
