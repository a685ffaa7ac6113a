/**
 * Browser entry (bundled by esbuild into `circuitscopeViz`, see src/viz/html/browser-bundle.ts): mounts a
 * `Figure` into a DOM element. Used by the HTML report and by the web app.
 */
import embed, { type Result as EmbedResult } from "vega-embed";
import { fitOf, fittedStep, stepOf, withStep } from "../charts/fit.ts";
import type { ChartFigure, Figure } from "../figure.ts";
import { type AttentionViewOptions, mountAttentionView } from "./attention-view.ts";
import { injectStyles } from "./styles.ts";
import { mountTokenView } from "./token-view.ts";

export { type GraphViewOptions, mountGraphPage, mountGraphView } from "./graph-view.ts";

/**
 * Resolves with the Vega view of a chart (for click handlers, e.g. the web app's head picker), null for the
 * other views. `opts.attention` picks the attention view's first head and reports the heads the reader opens.
 */
export async function mountFigure(
  el: HTMLElement,
  fig: Figure,
  opts: { attention?: AttentionViewOptions } = {},
): Promise<EmbedResult["view"] | null> {
  injectStyles(el.ownerDocument);
  el.dataset.csKind = fig.kind;
  if (fig.kind === "attention" || fig.kind === "tokens") {
    // Charts carry their title inside the Vega spec; the hand-written views get the same look here.
    el.innerHTML = "";
    const title = el.appendChild(el.ownerDocument.createElement("div"));
    title.className = "cs-view-title";
    title.textContent = fig.title;
    const body = el.appendChild(el.ownerDocument.createElement("div"));
    if (fig.kind === "attention") mountAttentionView(body, fig.data, opts.attention);
    else mountTokenView(body, fig.data, "");
    return null;
  }
  return (await embedFitted(el, fig)).view;
}

// SVG renderer: crisp when zoomed, and the marks are DOM nodes the export menu and tests can see.
// No "open in editor" link: reports must work offline.
const EMBED_OPTIONS = {
  renderer: "svg",
  actions: { export: true, source: false, compiled: false, editor: false },
} as const;

/**
 * Draws a chart at its built size, measures it, and redraws it once with the band step (or plot width)
 * that makes it exactly fill `el`'s width: labels and legend stay visible with no horizontal scroll, and a
 * wide panel gets a large chart rather than a small one in a corner.
 */
async function embedFitted(el: HTMLElement, fig: ChartFigure): Promise<EmbedResult> {
  // vega-embed makes its element an inline-block as wide as the drawing (plus the actions button), so it
  // gets a child of its own: `el` keeps the container's width, and the child's width is what was drawn.
  el.innerHTML = "";
  const host = el.appendChild(el.ownerDocument.createElement("div"));
  const available = el.clientWidth;
  let result = await embed(host, fig.spec, EMBED_OPTIONS);
  const fit = fitOf(fig.spec);
  const step = stepOf(fig.spec);
  if (!fit || step === undefined || available <= 0) return result;
  const drawn = host.offsetWidth;
  if (drawn <= 0) return result;
  const fitted = fittedStep(fit, step, drawn, available - 2);
  if (fitted === step) return result;
  result.finalize();
  result = await embed(host, withStep(fig.spec, fitted), EMBED_OPTIONS);
  el.dataset.csStep = String(fitted);
  return result;
}

/**
 * Mounts every `[data-cs-figure="K"]` element under `root` with figure K from the JSON in
 * `<script type="application/json" id="cs-figures">`. Resolves once all are drawn (sets body[data-cs-ready]).
 */
export async function mountAll(root: Document = document): Promise<void> {
  const json = root.getElementById("cs-figures")?.textContent;
  if (!json)
    throw new Error('circuitscopeViz.mountAll: no <script id="cs-figures"> with figure JSON in the page.');
  const figures = JSON.parse(json) as Figure[];
  const targets = [...root.querySelectorAll<HTMLElement>("[data-cs-figure]")];
  await Promise.all(
    targets.map(async (el) => {
      try {
        await mountFigure(el, figures[Number(el.dataset.csFigure)]);
      } catch (err) {
        el.textContent = `Could not draw this figure: ${(err as Error).message}`;
        console.error(err);
      }
    }),
  );
  root.body.dataset.csReady = "true";
}
