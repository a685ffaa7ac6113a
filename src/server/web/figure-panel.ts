/** Mounts server-built figures (src/viz Figure objects) with the shared browser components. */
import { mountFigure } from "../../viz/browser/index.ts";
import type { Figure } from "../../viz/figure.ts";
import { showError } from "./dom.ts";

export type ChartView = Awaited<ReturnType<typeof mountFigure>>;

/** Appends a figure to `out`; resolves with the chart's Vega view (null for attention/token views). */
export async function appendFigure(out: HTMLElement, fig: Figure): Promise<ChartView> {
  const host = out.appendChild(document.createElement("div"));
  host.className = "figure";
  try {
    return await mountFigure(host, fig);
  } catch (err) {
    showError(host, err);
    return null;
  }
}

export async function showFigure(out: HTMLElement, fig: Figure): Promise<ChartView> {
  out.replaceChildren();
  const view = await appendFigure(out, fig);
  out.dataset.ready = "true";
  return view;
}
