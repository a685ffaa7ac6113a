/**
 * Attention at a glance: every head's pattern as a thumbnail grid (layer rows, head columns), with one
 * head opened below it (the shared src/viz attention view); clicking a thumbnail opens that head.
 */
import { headName } from "../../model/component-names.ts";
import type { AttentionFigure } from "../../viz/figure.ts";
import { ApiCallError, api } from "./api.ts";
import { el, showBusy, showError } from "./dom.ts";
import { showFigure } from "./figure-panel.ts";

export interface AttentionRequest {
  prompt: string;
  /** [layer, head] to open; null opens the first head. */
  head: [number, number] | null;
  /** The reader opened another head (to record it in the form and the URL). */
  onSelect(layer: number, head: number): void;
}

const CAPTION =
  "Every head's attention pattern (rows: layers, columns: heads; one 0–1 colour scale for all). Click a thumbnail to open that head.";

/** The last prompt's all-heads figure: picking another head of the same prompt needs no model run. */
let shown: { prompt: string; fig: AttentionFigure } | null = null;

/** One head's pattern over the prompt. */
export async function showAttention(
  out: HTMLElement,
  prompt: string,
  layer: number,
  head: number,
): Promise<void> {
  delete out.dataset.ready;
  showBusy(out, `Computing the attention pattern of ${headName(layer, head)}…`);
  try {
    const fig = await api.post<AttentionFigure>("/api/attention", { prompt, layer, head });
    await showFigure(out, fig);
  } catch (err) {
    showError(out, err);
  }
}

/** Every head of the prompt as thumbnails, with `req.head` (or the first head) opened below them. */
export async function showAttentionGrid(out: HTMLElement, req: AttentionRequest): Promise<void> {
  delete out.dataset.ready;
  const label = req.head ? `L${req.head[0]}H${req.head[1]}` : undefined;
  try {
    if (shown?.prompt !== req.prompt) {
      showBusy(out, "Computing every head's attention pattern…");
      shown = null;
      shown = {
        prompt: req.prompt,
        fig: await api.post<AttentionFigure>("/api/attention", { prompt: req.prompt, heads: "all" }),
      };
    }
    const heads = shown.fig.data.heads;
    if (label && !heads.some((h) => h.label === label))
      return showError(
        out,
        new Error(`${label} is not one of this model's heads (${heads[0].label} … ${heads.at(-1)?.label}).`),
      );
    await showFigure(out, shown.fig, CAPTION, {
      attention: {
        head: label,
        onSelect: (picked) => {
          const m = /^L(\d+)H(\d+)$/.exec(picked);
          if (m) req.onSelect(Number(m[1]), Number(m[2]));
        },
      },
    });
  } catch (err) {
    // The grid is refused for long prompts (its size is bounded); one head still fits.
    if (err instanceof ApiCallError && err.status === 400 && req.head) {
      await showAttention(out, req.prompt, ...req.head);
      out.append(el("p", { className: "caption", text: `No all-heads grid: ${err.message}` }));
    } else showError(out, err);
  }
}
