/**
 * A circuit as a layered graph: `input` at the top, then each layer's heads and its MLP, `logits` at the
 * bottom. Edge width ∝ |score| (one scale for the whole drawing), colour = sign, the child's input (q, k
 * or v) by the port it enters and its dash. A simple layer-by-row layout rather than a general graph
 * layout: the layer order IS the information, and rows keep it readable without a layout library.
 * The SVG carries a <title> per edge and node (hover text anywhere); the HTML page adds highlighting and
 * a head's attention pattern on click.
 */
import { edgeLabel, nodeLabel } from "../circuits/graph.ts";
import { formatValue } from "./color-scale.ts";
import { writeFileAtomic } from "./export/write-files.ts";
import { jsonForScript } from "./html/report.ts";
import { attentionGridSvg } from "./views/attention-svg.ts";
import { escapeXml, SANS_FONT } from "./views/svg-parts.ts";

export interface CircuitGraphEdge {
  name: string;
  parent: string;
  child: string;
  input: "q" | "k" | "v" | null;
  score: number;
  exact?: number;
}

export interface CircuitGraphData {
  title: string;
  nLayers: number;
  /** What the score is, e.g. "EAP-IG score (5 steps): change in logit diff when the edge is removed". */
  scoreLabel: string;
  edges: CircuitGraphEdge[];
}

const POS = "#2166ac";
const NEG = "#b2182b";
const NODE_W = 58;
const NODE_H = 24;
const ROW_H = 84;
const GAP = 14;
const DASH: Record<string, string> = { q: "", k: "6 3", v: "2 3" };

interface Placed {
  x: number;
  y: number;
}

function nodeRow(node: string, nLayers: number): number {
  if (node === "input") return 0;
  if (node === "logits") return 2 * nLayers + 1;
  const m = /^(a|m)(\d+)/.exec(node);
  if (!m) throw new Error(`circuit graph: unknown node "${node}"`);
  return 1 + 2 * Number(m[2]) + (m[1] === "m" ? 1 : 0);
}

function nodeOrder(node: string): number {
  const m = /\.h(\d+)$/.exec(node);
  return m ? Number(m[1]) : 0;
}

/** The circuit as a standalone SVG. */
export function circuitGraphSvg(data: CircuitGraphData): string {
  const nodes = new Set<string>(["input", "logits"]);
  for (const e of data.edges) {
    nodes.add(e.parent);
    nodes.add(e.child);
  }
  const rows = new Map<number, string[]>();
  for (const n of nodes) {
    const r = nodeRow(n, data.nLayers);
    rows.set(r, [...(rows.get(r) ?? []), n]);
  }
  // Heads spread over the middle; each MLP sits right of the heads so edges passing a layer miss it.
  const headsWide = Math.max(1, ...[...rows.entries()].filter(([r]) => r % 2 === 1).map(([, l]) => l.length));
  const left = 70;
  const top = 112;
  const headSpan = headsWide * (NODE_W + GAP);
  const mlpX = left + headSpan + 3 * GAP;
  const width = Math.max(720, mlpX + NODE_W + 24);
  const pos = new Map<string, Placed>();
  for (const [r, list] of rows) {
    list.sort((a, b) => nodeOrder(a) - nodeOrder(b));
    const y = top + r * ROW_H;
    if (r % 2 === 0 && r > 0 && r < 2 * data.nLayers + 1) {
      for (const n of list) pos.set(n, { x: mlpX, y });
      continue;
    }
    const span = list.length * (NODE_W + GAP) - GAP;
    const x0 = left + (headSpan - GAP - span) / 2;
    for (const [i, n] of list.entries()) pos.set(n, { x: x0 + i * (NODE_W + GAP), y });
  }
  const maxAbs = Math.max(1e-12, ...data.edges.map((e) => Math.abs(e.score)));
  const widthOf = (s: number) => 0.6 + 5.4 * (Math.abs(s) / maxAbs);
  const parts: string[] = [];
  parts.push(
    `<text x="12" y="20" font-size="14" font-weight="bold" fill="#111">${escapeXml(data.title)}</text>`,
    // The subtitle is one short line per fact, so none is longer than the narrowest graph (720 px).
    `<text class="cs-subtitle" x="12" y="38" font-size="11" fill="#444">${escapeXml(`${data.edges.length} edges, ${nodes.size - 2} components.`)}</text>`,
    `<text class="cs-subtitle" x="12" y="54" font-size="11" fill="#444">${escapeXml(`Score: ${data.scoreLabel}.`)}</text>`,
    `<text class="cs-subtitle" x="12" y="70" font-size="11" fill="#444">${escapeXml(`Line width ∝ |score| (widest = ${formatValue(maxAbs)}).`)} <tspan fill="${NEG}">Red</tspan>: removing the edge lowers the metric; <tspan fill="${POS}">blue</tspan>: removing it raises it.</text>`,
    `<text class="cs-subtitle" x="12" y="86" font-size="11" fill="#444">Into a head: q enters at the left (solid), k in the middle (dashed), v at the right (dotted).</text>`,
  );
  for (let l = 0; l < data.nLayers; l++) {
    const y = top + (1 + 2 * l) * ROW_H + NODE_H / 2;
    parts.push(
      `<text x="12" y="${y + 4}" font-size="11" fill="#777">L${l} attn</text>`,
      `<text x="12" y="${y + ROW_H + 4}" font-size="11" fill="#777">L${l} mlp</text>`,
    );
  }
  const sorted = [...data.edges].sort((a, b) => Math.abs(a.score) - Math.abs(b.score)); // strongest on top
  for (const e of sorted) {
    const p = pos.get(e.parent) as Placed;
    const c = pos.get(e.child) as Placed;
    const port = e.input === "q" ? 0.2 : e.input === "k" ? 0.5 : e.input === "v" ? 0.8 : 0.5;
    const x1 = p.x + NODE_W / 2;
    const y1 = p.y + NODE_H;
    const x2 = c.x + NODE_W * port;
    const y2 = c.y;
    const bend = Math.max(24, (y2 - y1) / 2);
    const hover = `${edgeLabel(e.name)}: score ${formatValue(e.score)}${e.exact !== undefined ? `, exact ${formatValue(e.exact)}` : ""}`;
    const dash = e.input ? DASH[e.input] : "";
    parts.push(
      `<path class="cs-edge" data-edge="${escapeXml(edgeLabel(e.name))}" d="M${x1.toFixed(1)},${y1} C${x1.toFixed(1)},${y1 + bend} ${x2.toFixed(1)},${y2 - bend} ${x2.toFixed(1)},${y2}" fill="none" stroke="${e.score < 0 ? NEG : POS}" stroke-opacity="0.75" stroke-width="${widthOf(e.score).toFixed(2)}"${dash ? ` stroke-dasharray="${dash}"` : ""}><title>${escapeXml(hover)}</title></path>`,
    );
  }
  for (const [node, p] of pos) {
    const isHead = node.startsWith("a");
    const fill = isHead ? "#f3efe6" : node.startsWith("m") ? "#e6eef3" : "#eeeeee";
    const n = nodeLabel(node);
    parts.push(
      `<g class="cs-node" data-node="${escapeXml(n)}"${isHead ? ' style="cursor:pointer"' : ""}><rect x="${p.x}" y="${p.y}" width="${NODE_W}" height="${NODE_H}" rx="4" fill="${fill}" stroke="#666"/><text x="${p.x + NODE_W / 2}" y="${p.y + 16}" font-size="11" text-anchor="middle" fill="#111">${escapeXml(n)}</text><title>${escapeXml(isHead ? `${n} (click: attention pattern)` : n)}</title></g>`,
    );
    if (isHead)
      parts.push(
        ...(["q", "k", "v"] as const).map(
          (q, i) =>
            `<text x="${p.x + NODE_W * (0.2 + 0.3 * i)}" y="${p.y - 2}" font-size="8" text-anchor="middle" fill="#888">${q}</text>`,
        ),
      );
  }
  const height = top + (2 * data.nLayers + 2) * ROW_H;
  return `<svg xmlns="http://www.w3.org/2000/svg" class="cs-circuit" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="${SANS_FONT}"><rect width="100%" height="100%" fill="#fff"/>${parts.join("")}</svg>`;
}

export interface CircuitPageOptions {
  graph: CircuitGraphData;
  /** Lines stating the inputs (model, prompts, method, ...). */
  inputs: string[];
  /** Paragraphs of findings (faithfulness, size, estimate check). */
  summary: string[];
  /** SVG of the faithfulness curve. */
  curveSvg: string;
  /** Attention patterns of the circuit's heads on the first clean prompt, keyed by their labels (`L4H2`). */
  attention: { tokens: string[]; heads: Record<string, number[][]> };
  /** Rows of the exact-vs-estimate table. */
  comparison: { name: string; estimate: number; exact: number }[];
}

/** A self-contained page: the graph (hover an edge: its score; click a head: its attention), the curve, the check. */
export function circuitPageHtml(o: CircuitPageOptions): string {
  const heads = Object.fromEntries(
    Object.entries(o.attention.heads).map(([h, pattern]) => [
      h,
      attentionGridSvg(o.attention.tokens, pattern, `${h}: attention on the first clean prompt`),
    ]),
  );
  const rows = o.comparison
    .map(
      (r) =>
        `<tr><td>${escapeXml(edgeLabel(r.name))}</td><td>${formatValue(r.estimate)}</td><td>${formatValue(r.exact)}</td></tr>`,
    )
    .join("");
  const script = `
const heads = JSON.parse(document.getElementById("cs-heads").textContent);
const panel = document.getElementById("cs-attn");
for (const g of document.querySelectorAll(".cs-node")) {
  g.addEventListener("click", () => {
    const svg = heads[g.dataset.node];
    panel.innerHTML = svg ?? "";
    if (!svg) panel.textContent = g.dataset.node + " is not a head: no attention pattern.";
  });
}
for (const p of document.querySelectorAll(".cs-edge")) {
  p.addEventListener("mouseenter", () => { p.dataset.w = p.getAttribute("stroke-width"); p.setAttribute("stroke-opacity", "1"); p.setAttribute("stroke-width", String(Number(p.dataset.w) + 2)); document.getElementById("cs-hover").textContent = p.querySelector("title").textContent; });
  p.addEventListener("mouseleave", () => { p.setAttribute("stroke-opacity", "0.75"); p.setAttribute("stroke-width", p.dataset.w); });
}`;
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>${escapeXml(o.graph.title)}</title>
<style>body{font-family:${SANS_FONT};max-width:1200px;margin:20px auto;padding:0 16px;color:#1a1a1a}
.cs-row{display:flex;gap:20px;align-items:flex-start}.cs-graph{overflow:auto;border:1px solid #e4e4e4}
#cs-hover{min-height:1.4em;font-family:monospace;color:#333}table{border-collapse:collapse}td,th{border:1px solid #ddd;padding:3px 8px;text-align:right}td:first-child{text-align:left;font-family:monospace}</style>
</head><body>
<h1>${escapeXml(o.graph.title)}</h1>
<ul>${o.inputs.map((l) => `<li>${escapeXml(l)}</li>`).join("")}</ul>
${o.summary.map((p) => `<p>${escapeXml(p)}</p>`).join("\n")}
<p id="cs-hover">Hover an edge for its score; click a head for its attention pattern.</p>
<div class="cs-row"><div class="cs-graph">${circuitGraphSvg(o.graph)}</div><div id="cs-attn"></div></div>
<h2>Faithfulness</h2>
<p>Normalised metric (1 = the clean run, 0 = the corrupted run) of the top-n edges by |score| after pruning to paths from input to logits, against the number of edges kept.</p>
${o.curveSvg}
<h2>Estimate vs exact on the top edges</h2>
<p>${o.comparison.length ? "The exact score removes the one edge and reruns the model; the estimate is a first-order (EAP) or path-averaged (EAP-IG) approximation of it." : "Not computed (exact scores were the method, or the check was turned off)."}</p>
${o.comparison.length ? `<table><tr><th>edge</th><th>estimate</th><th>exact</th></tr>${rows}</table>` : ""}
<script type="application/json" id="cs-heads">${jsonForScript(heads)}</script>
<script>${script}</script>
</body></html>`;
}

export function writeCircuitPage(path: string, o: CircuitPageOptions): void {
  writeFileAtomic(path, circuitPageHtml(o));
}
