/** Logit difference per layer and the per-head attribution heatmap; clicking a head cell selects it. */
import type { Figure } from "../../viz/figure.ts";
import { displayToken } from "../../viz/token-labels.ts";
import { api } from "./api.ts";
import { el, showBusy, showError } from "./dom.ts";
import { appendFigure } from "./figure-panel.ts";

interface AttributionResponse {
  logitDiff: number;
  figures: { perLayer: Figure; heads: Figure };
  captions?: { perLayer: string; heads: string };
}

export async function showAttribution(
  out: HTMLElement,
  params: { prompt: string; answer: string; wrong: string },
  onHeadClick: (layer: number, head: number) => void,
): Promise<void> {
  delete out.dataset.ready;
  showBusy(out, "Attributing the logit difference…");
  try {
    const res = await api.post<AttributionResponse>("/api/attribution", params);
    out.replaceChildren(
      el("div", {
        className: "answer-line",
        text: `Logit difference (${displayToken(params.answer)} − ${displayToken(params.wrong)}): ${res.logitDiff.toFixed(3)}`,
      }),
    );
    await appendFigure(out, res.figures.perLayer, res.captions?.perLayer);
    const heads = await appendFigure(out, res.figures.heads, res.captions?.heads);
    // Heatmap cells carry their row ("L3") and column ("H7") labels in the datum.
    heads?.addEventListener("click", (_event, item) => {
      const datum = (item as { datum?: { row?: string; col?: string } } | null)?.datum;
      const l = /^L(\d+)$/.exec(datum?.row ?? "");
      const h = /^H(\d+)$/.exec(datum?.col ?? "");
      if (l && h) onHeadClick(Number(l[1]), Number(h[1]));
    });
    out.dataset.ready = "true";
  } catch (err) {
    showError(out, err);
  }
}
