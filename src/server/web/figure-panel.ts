/** Mounts server-built figures (src/viz Figure objects) with the shared browser components. */
import { mountFigure } from "../../viz/browser/index.ts";
import type { Figure } from "../../viz/figure.ts";
import { el, showError } from "./dom.ts";

export type ChartView = Awaited<ReturnType<typeof mountFigure>>;
/** How a view is mounted (e.g. the attention view's first head and its head-picked callback). */
export type MountOptions = Parameters<typeof mountFigure>[2];

/**
 * Appends a figure (and its caption: what the numbers are) to `out`; resolves with the chart's Vega view
 * (null for attention/token views). The figure sizes itself to `out`'s width.
 */
export async function appendFigure(
  out: HTMLElement,
  fig: Figure,
  caption?: string,
  mount?: MountOptions,
): Promise<ChartView> {
  const host = out.appendChild(document.createElement("div"));
  host.className = "figure";
  if (caption) out.append(el("p", { className: "caption", text: caption }));
  try {
    return await mountFigure(host, fig, mount);
  } catch (err) {
    showError(host, err);
    return null;
  }
}

/** What a result was computed from (prompts, tokens, metric, n), as a definition list. */
export function inputsList(inputs: { label: string; value: string | string[] }[]): HTMLElement {
  const dl = el("dl", { className: "inputs" });
  for (const i of inputs) {
    const dd = el("dd");
    if (Array.isArray(i.value)) {
      const ol = el(
        "ol",
        {},
        i.value.map((v) => el("li", { text: v })),
      );
      // Prompts are numbered from 0, as on the CLI's pages (src/viz/html/report.ts) and in batch indices.
      ol.start = 0;
      dd.append(ol);
    } else dd.textContent = i.value;
    dl.append(el("dt", { text: i.label }), dd);
  }
  return dl;
}

export async function showFigure(
  out: HTMLElement,
  fig: Figure,
  caption?: string,
  mount?: MountOptions,
): Promise<ChartView> {
  out.replaceChildren();
  const view = await appendFigure(out, fig, caption, mount);
  out.dataset.ready = "true";
  return view;
}
