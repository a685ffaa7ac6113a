/** A neuron page: the sections of src/neurons' report (examples, histogram, logit effect, own text). */
import type { ReportSection } from "../../viz/html/report.ts";
import { api } from "./api.ts";
import { el, showBusy, showError } from "./dom.ts";
import { appendFigure } from "./figure-panel.ts";

interface NeuronResponse {
  title: string;
  sections: ReportSection[];
  indexed: boolean;
  /** Why corpus examples are missing although an index is loaded. */
  note?: string;
}

export async function showNeuron(
  out: HTMLElement,
  layer: number,
  neuron: number,
  text: string,
): Promise<void> {
  delete out.dataset.ready;
  showBusy(out, `Loading neuron L${layer} N${neuron}…`);
  try {
    const query = text ? `?${new URLSearchParams({ text })}` : "";
    const res = await api.get<NeuronResponse>(`/api/neurons/${layer}/${neuron}${query}`);
    out.replaceChildren(el("h3", { text: res.title }));
    if (!res.indexed) {
      out.append(
        el("p", {
          className: "hint",
          text:
            res.note ?? "No neuron index loaded (start the server with --neuron-index DIR for top examples).",
        }),
      );
    }
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
