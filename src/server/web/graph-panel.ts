/**
 * The explorer's attribution graph panel: the graph given with `serve --graph FILE`, or one computed for a
 * prompt with the server's transcoders (`serve --transcoders DIR`, a graph job). Both are drawn by the same
 * view as the `graph --html` page (src/viz/browser/graph-view.ts): hover, pin, supernodes and export work
 * the same here. A computed graph's feature nodes are the server's transcoders' features: clicking one opens
 * its page below the graph, when the server has their feature index.
 */
import type { FrontEndGraph, FrontEndNode } from "../../graphs/graph-files.ts";
import { type GraphViewOptions, mountGraphView } from "../../viz/browser/index.ts";
import { api } from "./api.ts";
import { el, showBusy, showError } from "./dom.ts";
import { showTranscoderFeature } from "./feature-panel.ts";
import { runJob } from "./job-panel.ts";

/** Draws `graph` into `out` under a line saying what it is. */
function drawGraph(out: HTMLElement, graph: FrontEndGraph, extra = "", view: GraphViewOptions = {}): void {
  const m = graph.metadata;
  const host = el("div", { className: "graph-view" });
  out.replaceChildren(
    el("p", {
      className: "hint",
      text: `${m.slug}: prompt "${m.prompt}", transcoders ${m.scan || "not given"}, node threshold ${m.node_threshold ?? "not given"}; ${graph.nodes.length} nodes, ${graph.links.length} edges.${extra}`,
    }),
    host,
  );
  mountGraphView(host, graph, view);
}

export async function showGraph(out: HTMLElement): Promise<void> {
  showBusy(out, "Loading the graph…");
  try {
    drawGraph(out, await api.get<FrontEndGraph>("/api/graph"));
    out.dataset.ready = "true";
  } catch (err) {
    showError(out, err);
  }
}

export interface GraphJobParams {
  prompt: string;
  targets: string[];
  nodeThreshold: number;
  edgeThreshold: number;
}

interface GraphJobResult {
  graph: FrontEndGraph;
  replacementScore: number;
  completenessScore: number;
  /** For a soft-capped model: edges into logit nodes are of the pre-cap logits (preCapNote); else "". */
  preCapNote?: string;
}

/** Where a computed graph's feature nodes open their pages; null: the server has no transcoder feature index. */
export type FeaturePagesOut = HTMLElement | null;

const NO_FEATURE_PAGES =
  " Feature nodes have no page: the server has no feature index of its transcoders (build one with circuitscope index --transcoders DIR --corpus C --out DIR/feature-index, then restart serve, or pass serve --transcoder-index INDEX).";

/**
 * Computes the prompt's graph as a background job (progress, cancel) and draws it when it is done; a click on
 * a feature node (layer L, feature F) shows that transcoder feature's page in `pages`, with its activations on
 * the graph's prompt.
 */
export async function runGraph(
  out: HTMLElement,
  params: GraphJobParams,
  pages: FeaturePagesOut,
): Promise<void> {
  pages?.replaceChildren(); // the previous graph's feature
  const openFeature = (n: FrontEndNode) => {
    if (!pages) return;
    void showTranscoderFeature(pages, Number(n.layer), n.feature, params.prompt);
    pages.scrollIntoView({ block: "start" });
  };
  await runJob<GraphJobResult>(out, {
    request: { kind: "graph", ...params },
    running: (p) => `Graph: ${p.done} / ${p.total} targets attributed (logits, then features)`,
    async show(host, result) {
      const scores = ` Replacement score ${result.replacementScore.toFixed(3)}, completeness score ${result.completenessScore.toFixed(3)} (unpruned graph).`;
      drawGraph(
        host,
        result.graph,
        `${scores}${result.preCapNote ?? ""}${pages ? "" : NO_FEATURE_PAGES}`,
        pages ? { openFeature } : {},
      );
      return `Done: ${result.graph.nodes.length} nodes, ${result.graph.links.length} edges after pruning.`;
    },
  });
}
