/**
 * A circuit of edges as a background job: the layered graph (hover an edge for its score; click a head
 * for its attention pattern on the clean prompt), the faithfulness curve and the numbers in words.
 */
import type { CircuitParams } from "../tasks.ts";
import { showAttention } from "./attention-panel.ts";
import { el } from "./dom.ts";
import { appendFigure, inputsList } from "./figure-panel.ts";
import { runJob } from "./job-panel.ts";

type CircuitResult = Awaited<ReturnType<typeof import("../tasks.ts").circuitTask>>;

export async function runCircuit(out: HTMLElement, params: CircuitParams): Promise<void> {
  await runJob<CircuitResult>(out, {
    request: { kind: "circuit", ...params },
    running: (p) =>
      `Circuit: ${p.done} / ${p.total} runs of this step (scores, exact check, faithfulness search)`,
    async show(host, result) {
      const hover = el("p", {
        className: "hint",
        text: "Hover an edge for its score; click a head for its attention.",
      });
      const graph = el("div", { className: "circuit-graph" });
      // The SVG is drawn by the server (src/viz/circuit-graph.ts) with every text escaped.
      graph.innerHTML = result.svg;
      // Scaled to the panel (it has a viewBox) rather than clipped when the panel is narrower than the graph.
      const svg = graph.querySelector("svg");
      if (svg) {
        svg.style.maxWidth = "100%";
        svg.style.height = "auto";
      }
      const attention = el("div", { className: "circuit-attention" });
      host.replaceChildren(inputsList(result.inputs), hover, graph, attention);
      for (const edge of graph.querySelectorAll<SVGElement>(".cs-edge"))
        edge.addEventListener("mouseenter", () => {
          hover.textContent = edge.querySelector("title")?.textContent ?? "";
        });
      for (const node of graph.querySelectorAll<SVGElement>(".cs-node")) {
        // Nodes carry the report's head names (nodeLabel in src/circuits/graph.ts): `L4H2`.
        const m = /^L(\d+)H(\d+)$/.exec(node.dataset.node ?? "");
        if (m)
          node.addEventListener(
            "click",
            () => void showAttention(attention, params.clean, Number(m[1]), Number(m[2])),
          );
      }
      await appendFigure(
        host,
        result.curve,
        "Faithfulness (1 = the clean run, 0 = the corrupted run) of the top-n edges by |score| after pruning, against the edges kept.",
      );
      return result.summary;
    },
  });
}
