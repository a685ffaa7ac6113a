/**
 * The attribution graph given with `serve --graph FILE`, drawn by the same view as the `graph --html` page
 * (src/viz/browser/graph-view.ts): hover, pin, supernodes and export work the same here.
 */
import type { FrontEndGraph } from "../../graphs/graph-files.ts";
import { mountGraphView } from "../../viz/browser/index.ts";
import { api } from "./api.ts";
import { el, showBusy, showError } from "./dom.ts";

export async function showGraph(out: HTMLElement): Promise<void> {
  showBusy(out, "Loading the graph…");
  try {
    const graph = await api.get<FrontEndGraph>("/api/graph");
    const m = graph.metadata;
    const host = el("div", { className: "graph-view" });
    out.replaceChildren(
      el("p", {
        className: "hint",
        text: `${m.slug}: prompt "${m.prompt}", transcoders ${m.scan || "not given"}, node threshold ${m.node_threshold ?? "not given"}; ${graph.nodes.length} nodes, ${graph.links.length} edges.`,
      }),
      host,
    );
    mountGraphView(host, graph);
    out.dataset.ready = "true";
  } catch (err) {
    showError(out, err);
  }
}
