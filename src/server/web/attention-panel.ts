/** One head's attention pattern over the prompt. */
import type { AttentionFigure } from "../../viz/figure.ts";
import { api } from "./api.ts";
import { showBusy, showError } from "./dom.ts";
import { showFigure } from "./figure-panel.ts";

export async function showAttention(
  out: HTMLElement,
  prompt: string,
  layer: number,
  head: number,
): Promise<void> {
  delete out.dataset.ready;
  showBusy(out, `Computing the attention pattern of L${layer}H${head}…`);
  try {
    const fig = await api.post<AttentionFigure>("/api/attention", { prompt, layer, head });
    await showFigure(out, fig);
  } catch (err) {
    showError(out, err);
  }
}
