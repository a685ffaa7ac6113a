/**
 * Neuron and feature pages: the sections of src/neurons' reports (examples, quantile groups, histogram,
 * logit effect, own text), drawn the same way for both.
 */
import type { ReportSection } from "../../viz/html/report.ts";
import { api } from "./api.ts";
import { el, showBusy, showError } from "./dom.ts";
import { appendFigure } from "./figure-panel.ts";

interface UnitPageResponse {
  title: string;
  sections: ReportSection[];
  indexed: boolean;
  /** Why corpus examples are missing. */
  note?: string;
}

/** Fetches a unit's page from `path` and draws it into `out`; `noIndex` is said when the server has no index. */
export async function showUnitPage(
  out: HTMLElement,
  opts: { path: string; text: string; busy: string; noIndex: string },
): Promise<void> {
  delete out.dataset.ready;
  showBusy(out, opts.busy);
  try {
    const query = opts.text ? `?${new URLSearchParams({ text: opts.text })}` : "";
    const res = await api.get<UnitPageResponse>(`${opts.path}${query}`);
    out.replaceChildren(el("h3", { text: res.title }));
    if (!res.indexed) out.append(el("p", { className: "hint", text: res.note ?? opts.noIndex }));
    for (const section of res.sections) {
      out.append(el("h3", { text: section.heading }));
      if (section.text) out.append(el("p", { className: "hint", text: section.text }));
      for (const f of section.figures) await appendFigure(out, f.figure);
    }
    out.dataset.ready = "true";
  } catch (err) {
    showError(out, err);
  }
}

export function showNeuron(out: HTMLElement, layer: number, neuron: number, text: string): Promise<void> {
  return showUnitPage(out, {
    path: `/api/neurons/${layer}/${neuron}`,
    text,
    busy: `Loading neuron L${layer} N${neuron}…`,
    noIndex: "No neuron index loaded (start the server with --neuron-index DIR for top examples).",
  });
}
