/**
 * The interactive attribution graph (the `graph --html` page and the explorer's graph panel), drawn from the
 * circuit-tracer front-end JSON: hover a node for its strongest incoming and outgoing edges, click a feature
 * for its page, shift-click to pin nodes into a subgraph, group pinned nodes into supernodes, export the JSON
 * with the pins and supernodes in its qParams (circuit-tracer's fields, so their viewer reads them back).
 */
import type { FrontEndGraph, FrontEndNode } from "../../graphs/graph-files.ts";
import { domainOf, formatValue, makeColorScale } from "../color-scale.ts";
import {
  frontEndNodeKind,
  type GraphLayout,
  groupEdges,
  layoutGraph,
  type PlacedNode,
  subgraphGroups,
  topEdges,
  type WeightedEdge,
} from "../graph-layout.ts";
import { displayToken } from "../token-labels.ts";
import { escapeXml, SANS_FONT } from "../views/svg-parts.ts";
import { injectStyles } from "./styles.ts";

export interface GraphViewOptions {
  /**
   * A feature's page: `{layer}`, `{feature}`, `{ctx_idx}` and `{node_id}` are filled in (URL-encoded),
   * e.g. `features/L{layer}-F{feature}.html` or a Neuronpedia address. Without it features have no link.
   */
  featureUrl?: string;
  /**
   * Called with a clicked feature node instead of opening `featureUrl` (the explorer shows the feature's page
   * in its own panel). Either makes feature nodes links; error, embedding and logit nodes never are.
   */
  openFeature?: (node: FrontEndNode) => void;
  /** How many incoming and outgoing edges the hover panel lists (default 5). */
  topK?: number;
  /** Called after every pin, unpin and grouping with the graph as it would be exported. */
  onChange?: (graph: FrontEndGraph) => void;
}

export interface GraphViewHandle {
  /** The graph with the current pins and supernodes in its qParams (what "Export JSON" downloads). */
  current(): FrontEndGraph;
  togglePin(id: string): void;
  group(name: string): void;
}

/** The unit every edge weight is in, as the legend states it. */
export const EDGE_UNIT =
  "direct effect of the source on the target's pre-activation (feature) or demeaned logit (logit), through the replacement model with attention patterns and norm scales frozen";

const SUPERNODE_COLOURS = ["#e6550d", "#31a354", "#756bb1", "#d6616b", "#3182bd", "#8c6d31"];

export function nodeLabel(n: FrontEndNode, tokens: readonly string[]): string {
  const at = `@${n.ctx_idx} ${displayToken(tokens[n.ctx_idx] ?? "")}`;
  switch (n.feature_type) {
    case "embedding":
      return `Emb ${at}`;
    case "logit":
      return n.clerp || `logit ${n.feature}`;
    default:
      if (n.feature_type.includes("error")) return `Error L${n.layer} ${at}`;
      return `L${n.layer} F${n.feature} ${at}${n.clerp ? ` — ${n.clerp}` : ""}`;
  }
}

export function featureHref(template: string, n: FrontEndNode): string {
  const fields: Record<string, string> = {
    layer: String(n.layer),
    feature: String(n.feature),
    ctx_idx: String(n.ctx_idx),
    node_id: n.node_id,
  };
  return template.replace(/\{(layer|feature|ctx_idx|node_id)\}/g, (_, k: string) =>
    encodeURIComponent(fields[k]),
  );
}

/** `Output " she" (p=0.612)` (the front end's clerp) as `·she p=0.612`, short enough to stand above its node. */
function logitLabel(n: FrontEndNode): string {
  const m = /^Output "(.*)" \(p=([\d.e-]+)\)$/s.exec(n.clerp);
  return m ? `${displayToken(m[1])} p=${m[2]}` : n.clerp || n.node_id;
}

/** A value the graph does not have for this kind of node reads "not computed", never 0. */
function valueText(v: number | null | undefined): string {
  return v === null || v === undefined || !Number.isFinite(v) ? "not computed" : formatValue(v);
}

function nodeShape(p: PlacedNode): string {
  const { x, y } = p;
  switch (p.kind) {
    case "feature":
      return `<circle class="cs-shape" cx="${x}" cy="${y}" r="5.5" fill="#fdd0a2" stroke="#7f2704"/>`;
    case "error":
      return `<rect class="cs-shape" x="${x - 5}" y="${y - 5}" width="10" height="10" fill="#d9d9d9" stroke="#333"/>`;
    case "embedding":
      return `<rect class="cs-shape" x="${x - 6}" y="${y - 6}" width="12" height="12" rx="2" fill="#c6dbef" stroke="#08306b"/>`;
    default:
      return `<path class="cs-shape" d="M${x - 7},${y + 5} L${x},${y - 7} L${x + 7},${y + 5} Z" fill="#c7e9c0" stroke="#00441b"/>`;
  }
}

function legendSvg(layout: GraphLayout, maxAbs: number | null, pos: string, neg: string): string {
  const x0 = layout.plot.left;
  const w = 160;
  const shapes = [
    ["feature", "transcoder feature"],
    ["error", "MLP reconstruction error"],
    ["embedding", "token embedding"],
    ["logit", "logit"],
  ] as const;
  const items = shapes
    .map(([kind, text], i) => {
      const x = x0 + 6 + i * 165;
      const shape = nodeShape({ kind, x, y: 56 } as PlacedNode);
      return `${shape}<text x="${x + 12}" y="60" font-size="11">${text}</text>`;
    })
    .join("");
  if (maxAbs === null)
    return `<g class="cs-graph-legend"><text class="cs-no-edges" x="${x0}" y="20" font-size="11" font-weight="bold">No edges in this graph: no edge scale.</text>${items}</g>`;
  return `<g class="cs-graph-legend"><defs><linearGradient id="cs-edge-scale"><stop offset="0" stop-color="${neg}"/><stop offset="0.5" stop-color="#f0f0f0"/><stop offset="1" stop-color="${pos}"/></linearGradient></defs>
<rect x="${x0}" y="14" width="${w}" height="10" fill="url(#cs-edge-scale)" stroke="#999"/>
<text class="cs-scale-min" x="${x0}" y="38" font-size="10" text-anchor="start">${formatValue(-maxAbs)}</text>
<text x="${x0 + w / 2}" y="38" font-size="10" text-anchor="middle">0</text>
<text class="cs-scale-max" x="${x0 + w}" y="38" font-size="10" text-anchor="end">${formatValue(maxAbs)}</text>
<text x="${x0}" y="8" font-size="11" font-weight="bold">Edge weight (one scale for every edge; width ∝ |weight|)</text>
${items}</g>`;
}

/**
 * Two SVGs stacked: the edges (and grid) below, everything else above. The edge layer is its own compositing
 * layer, so hovering (which fades it) and pinning (which restyles a node) never redraw thousands of edges.
 */
function graphSvgs(graph: FrontEndGraph, layout: GraphLayout): string {
  const maxAbs = domainOf(
    "diverging",
    graph.links.map((l) => l.weight),
  )[1];
  const scale = makeColorScale("diverging", [-maxAbs, maxAbs]);
  const pos = scale.color(maxAbs);
  const neg = scale.color(-maxAbs);
  const at = new Map(layout.nodes.map((p) => [p.id, p]));
  // No links: no scale at all, rather than a made-up ±1 one.
  const parts: string[] = [legendSvg(layout, graph.links.length ? maxAbs : null, pos, neg)];
  const below: string[] = [];
  for (const r of layout.rows) {
    below.push(
      `<line x1="${layout.plot.left}" x2="${layout.plot.right}" y1="${r.y}" y2="${r.y}" stroke="#eee"/>`,
    );
    parts.push(
      `<text class="cs-row-label" x="${layout.plot.left - 8}" y="${r.y + 4}" font-size="11" fill="#666" text-anchor="end">${escapeXml(r.label)}</text>`,
    );
  }
  for (const c of layout.columns) {
    const x = c.x + c.width / 2;
    const y = layout.plot.bottom + 16;
    below.push(
      `<line x1="${c.x}" x2="${c.x}" y1="${layout.plot.top - 10}" y2="${layout.plot.bottom + 8}" stroke="#f3f3f3"/>`,
    );
    parts.push(
      `<text class="cs-token-label" data-ctx="${c.ctx}" transform="translate(${x},${y}) rotate(-35)" font-size="11" text-anchor="end" font-family="monospace">${escapeXml(`${displayToken(c.token)} ${c.ctx}`)}</text>`,
    );
  }
  const edges = [...graph.links].sort((a, b) => Math.abs(a.weight) - Math.abs(b.weight)); // strongest on top
  below.push('<g class="cs-edges">');
  for (const l of edges) {
    const s = at.get(l.source) as PlacedNode;
    const t = at.get(l.target) as PlacedNode;
    const mid = (s.y + t.y) / 2;
    const width = 0.4 + 3.6 * (Math.abs(l.weight) / maxAbs);
    below.push(
      `<path class="cs-gedge" data-source="${escapeXml(l.source)}" data-target="${escapeXml(l.target)}" d="M${s.x},${s.y} C${s.x},${mid} ${t.x},${mid} ${t.x},${t.y}" fill="none" stroke="${scale.color(l.weight)}" stroke-width="${width.toFixed(2)}" stroke-opacity="0.85"/>`,
    );
  }
  below.push("</g>");
  // Hovering fades the edge layer and copies the node's own edges here, above it.
  parts.push('<g class="cs-highlight"></g>');
  for (const p of layout.nodes) {
    parts.push(
      `<g class="cs-gnode" data-id="${escapeXml(p.id)}" data-kind="${p.kind}" data-ctx="${p.ctx}" data-row="${p.row}" data-x="${p.x}" data-y="${p.y}">${nodeShape(p)}</g>`,
    );
    if (p.kind === "logit")
      parts.push(
        `<text class="cs-logit-label" transform="translate(${p.x + 3},${p.y - 12}) rotate(-60)" font-size="10">${escapeXml(logitLabel(p.node))}</text>`,
      );
  }
  const svg = (cls: string, body: string) =>
    `<svg xmlns="http://www.w3.org/2000/svg" class="${cls}" width="${layout.width}" height="${layout.height}" viewBox="0 0 ${layout.width} ${layout.height}" font-family="${SANS_FONT}">${body}</svg>`;
  return `<div class="cs-graph-stack" style="width:${layout.width}px;height:${layout.height}px">${svg("cs-graph-edges", below.join(""))}${svg("cs-graph", parts.join(""))}</div>`;
}

function h<K extends keyof HTMLElementTagNameMap>(
  doc: Document,
  tag: K,
  className: string,
  text?: string,
): HTMLElementTagNameMap[K] {
  const e = doc.createElement(tag);
  if (className) e.className = className;
  if (text !== undefined) e.textContent = text;
  return e;
}

export function mountGraphView(
  el: HTMLElement,
  input: FrontEndGraph,
  opts: GraphViewOptions = {},
): GraphViewHandle {
  const doc = el.ownerDocument;
  injectStyles(doc);
  const graph = input;
  const tokens = graph.metadata.prompt_tokens;
  const topK = opts.topK ?? 5;
  const byId = new Map(graph.nodes.map((n) => [n.node_id, n]));
  const label = (id: string) => nodeLabel(byId.get(id) as FrontEndNode, tokens);
  const pinned = new Set(graph.qParams.pinnedIds);
  let supernodes = graph.qParams.supernodes.map((s) => [...s]);
  /** The last node clicked (circuit-tracer's `clickedId`): its details stay shown when a page opens. */
  let clickedId = graph.qParams.clickedId ?? "";

  const linksFeatures = opts.openFeature !== undefined || opts.featureUrl !== undefined;
  const layout = layoutGraph(graph);
  el.replaceChildren();
  el.classList.add("cs-graph-view");
  const toolbar = el.appendChild(h(doc, "div", "cs-graph-toolbar"));
  const exportButton = toolbar.appendChild(h(doc, "button", "cs-export", "Export JSON (with pins)"));
  const clearButton = toolbar.appendChild(h(doc, "button", "cs-clear-pins", "Clear pins"));
  const nameInput = toolbar.appendChild(h(doc, "input", "cs-supernode-name"));
  nameInput.placeholder = "supernode name";
  const groupButton = toolbar.appendChild(h(doc, "button", "cs-group", "Group pinned into supernode"));
  toolbar.append(
    h(
      doc,
      "span",
      "cs-hint",
      `Hover a node: its top edges. ${linksFeatures ? "Click a feature: its page. " : ""}Shift-click a node: pin or unpin it.`,
    ),
  );
  el.append(h(doc, "p", "cs-edge-unit", `Edge weight: ${EDGE_UNIT}. Blue: positive; red: negative.`));
  const body = el.appendChild(h(doc, "div", "cs-graph-body"));
  const scroll = body.appendChild(h(doc, "div", "cs-graph-scroll"));
  scroll.innerHTML = graphSvgs(graph, layout); // every text in it is escaped
  const side = body.appendChild(h(doc, "div", "cs-graph-side"));
  const info = side.appendChild(h(doc, "div", "cs-node-info", "Hover a node."));
  side.append(h(doc, "h4", "", "Pinned nodes"));
  const pinList = side.appendChild(h(doc, "ul", "cs-pins"));
  side.append(h(doc, "h4", "", "Supernodes"));
  const superList = side.appendChild(h(doc, "ul", "cs-supernodes"));
  side.append(h(doc, "h4", "", "Subgraph edges (summed over a supernode's members)"));
  const subTable = side.appendChild(h(doc, "table", "cs-subgraph"));

  const svg = scroll.querySelector("svg.cs-graph") as SVGSVGElement;
  const nodeEls = new Map<string, SVGGElement>();
  for (const g of svg.querySelectorAll<SVGGElement>(".cs-gnode")) nodeEls.set(g.dataset.id as string, g);
  const edgeLayer = scroll.querySelector("svg.cs-graph-edges") as SVGSVGElement;
  const highlight = svg.querySelector(".cs-highlight") as SVGGElement;
  const edgesOf = new Map<string, SVGPathElement[]>();
  for (const e of edgeLayer.querySelectorAll<SVGPathElement>(".cs-gedge"))
    for (const end of new Set([e.dataset.source as string, e.dataset.target as string])) {
      const list = edgesOf.get(end) ?? [];
      if (list.length === 0) edgesOf.set(end, list);
      list.push(e);
    }

  const current = (): FrontEndGraph => ({
    ...graph,
    qParams: {
      ...graph.qParams,
      pinnedIds: [...pinned],
      supernodes: supernodes.map((s) => [...s]),
      clickedId,
    },
  });

  function edgeList(title: string, edges: WeightedEdge[], total: number, dir: string): HTMLElement {
    const box = h(doc, "div", `cs-${dir}`);
    box.append(h(doc, "div", "cs-list-title", `${title} (${edges.length} of ${total})`));
    const ol = box.appendChild(h(doc, "ol", ""));
    for (const e of edges) {
      const li = ol.appendChild(h(doc, "li", ""));
      li.dataset.id = e.id;
      li.dataset.weight = String(e.weight);
      li.append(h(doc, "span", "cs-w", formatValue(e.weight)), ` ${label(e.id)}`);
    }
    return box;
  }

  function showInfo(id: string): void {
    const n = byId.get(id) as FrontEndNode;
    const top = topEdges(graph.links, id, topK);
    info.replaceChildren(
      h(doc, "div", "cs-info-title", label(id)),
      h(
        doc,
        "div",
        "cs-info-values",
        `${n.feature_type}, layer ${n.layer}, position ${n.ctx_idx}; activation ${valueText(n.activation)}; influence ${valueText(n.influence)}`,
      ),
      edgeList("Top incoming", top.incoming, top.nIncoming, "incoming"),
      edgeList("Top outgoing", top.outgoing, top.nOutgoing, "outgoing"),
    );
    info.dataset.id = id;
    edgeLayer.style.opacity = "0.12";
    highlight.replaceChildren(
      ...(edgesOf.get(id) ?? []).map((e) => {
        const copy = e.cloneNode() as SVGPathElement;
        copy.setAttribute("class", "cs-gedge-on");
        copy.setAttribute("stroke-opacity", "1");
        return copy;
      }),
    );
  }

  function render(): void {
    const groupOf = new Map<string, number>();
    supernodes.forEach(([, ...ids], k) => {
      for (const m of ids) if (!groupOf.has(m)) groupOf.set(m, k);
    });
    for (const [id, g] of nodeEls) {
      g.classList.toggle("cs-pinned", pinned.has(id));
      g.classList.toggle("cs-clicked", id === clickedId);
      const k = groupOf.get(id);
      const shape = g.querySelector(".cs-shape") as SVGElement;
      if (k === undefined) {
        delete g.dataset.supernode;
        shape.removeAttribute("style");
      } else {
        g.dataset.supernode = supernodes[k][0];
        shape.setAttribute(
          "style",
          `stroke:${SUPERNODE_COLOURS[k % SUPERNODE_COLOURS.length]};stroke-width:3`,
        );
      }
    }
    pinList.replaceChildren(
      ...[...pinned].map((id) => {
        const li = h(doc, "li", "", label(id));
        li.dataset.id = id;
        const x = li.appendChild(h(doc, "button", "cs-unpin", "×"));
        x.title = "unpin";
        x.addEventListener("click", () => togglePin(id));
        return li;
      }),
    );
    superList.replaceChildren(
      ...supernodes.map(([name, ...ids], k) => {
        const li = h(doc, "li", "");
        li.dataset.name = name;
        const swatch = li.appendChild(h(doc, "span", "cs-swatch"));
        swatch.style.background = SUPERNODE_COLOURS[k % SUPERNODE_COLOURS.length];
        li.append(`${name}: ${ids.length} nodes`);
        const x = li.appendChild(h(doc, "button", "cs-ungroup", "ungroup"));
        x.addEventListener("click", () => {
          supernodes = supernodes.filter((_, j) => j !== k);
          changed();
        });
        return li;
      }),
    );
    const groups = subgraphGroups([...pinned], supernodes);
    const rows = groupEdges(graph.links, groups);
    const shown = (name: string) => (byId.has(name) ? label(name) : name);
    subTable.replaceChildren(
      h(doc, "tr", ""),
      ...rows.map((r) => {
        const tr = h(doc, "tr", "");
        tr.dataset.source = r.source;
        tr.dataset.target = r.target;
        tr.dataset.weight = String(r.weight);
        tr.append(
          h(doc, "td", "", shown(r.source)),
          h(doc, "td", "", "→"),
          h(doc, "td", "", shown(r.target)),
          h(doc, "td", "cs-w", formatValue(r.weight)),
        );
        return tr;
      }),
    );
    (subTable.firstChild as HTMLElement).innerHTML =
      rows.length > 0
        ? "<th>source</th><th></th><th>target</th><th>weight</th>"
        : "<td>Pin nodes connected by edges to see them here.</td>";
  }

  function changed(): void {
    render();
    opts.onChange?.(current());
  }

  function togglePin(id: string): void {
    if (!byId.has(id)) throw new Error(`graph view: no node "${id}"`);
    if (pinned.has(id)) pinned.delete(id);
    else pinned.add(id);
    changed();
  }

  function group(name: string): void {
    const inGroup = new Set(supernodes.flatMap(([, ...ids]) => ids));
    const members = [...pinned].filter((id) => !inGroup.has(id));
    if (!name.trim() || members.length === 0) return;
    supernodes = [...supernodes, [name.trim(), ...members]];
    changed();
  }

  for (const [id, g] of nodeEls) {
    const n = byId.get(id) as FrontEndNode;
    g.addEventListener("mouseenter", () => showInfo(id));
    g.addEventListener("mouseleave", () => {
      edgeLayer.style.opacity = "";
      highlight.replaceChildren();
    });
    g.addEventListener("click", (e) => {
      if (e.shiftKey || e.ctrlKey || e.metaKey) return togglePin(id);
      clickedId = id;
      changed();
      if (!linksFeatures || frontEndNodeKind(n) !== "feature") return;
      if (opts.openFeature) opts.openFeature(n);
      else if (opts.featureUrl) doc.defaultView?.open(featureHref(opts.featureUrl, n), "_blank", "noopener");
    });
    const title = doc.createElementNS("http://www.w3.org/2000/svg", "title");
    title.textContent = label(id);
    g.append(title);
    if (linksFeatures && frontEndNodeKind(n) === "feature") {
      g.classList.add("cs-linked");
      if (opts.featureUrl && !opts.openFeature) g.dataset.href = featureHref(opts.featureUrl, n);
      g.style.cursor = "pointer";
    }
  }
  exportButton.addEventListener("click", () => {
    const blob = new Blob([`${JSON.stringify(current(), null, 2)}\n`], { type: "application/json" });
    const a = doc.createElement("a");
    a.href = URL.createObjectURL(blob);
    a.download = `${graph.metadata.slug || "graph"}-subgraph.json`;
    a.click();
    setTimeout(() => URL.revokeObjectURL(a.href), 10_000);
  });
  clearButton.addEventListener("click", () => {
    pinned.clear();
    changed();
  });
  groupButton.addEventListener("click", () => {
    group(nameInput.value);
    nameInput.value = "";
  });
  render();
  if (byId.has(clickedId)) {
    showInfo(clickedId);
    edgeLayer.style.opacity = "";
    highlight.replaceChildren();
  }
  el.dataset.csReady = "true";
  return { current, togglePin, group };
}

/**
 * Mounts the graph of a standalone page: the JSON in `<script id="cs-graph-json">`, the options in
 * `<script id="cs-graph-options">`, into `#cs-graph`. Sets body[data-cs-ready] once drawn.
 */
export function mountGraphPage(doc: Document = document): GraphViewHandle {
  const read = (id: string) => JSON.parse(doc.getElementById(id)?.textContent ?? "null");
  const graph = read("cs-graph-json") as FrontEndGraph;
  const opts = (read("cs-graph-options") ?? {}) as GraphViewOptions;
  const handle = mountGraphView(doc.getElementById("cs-graph") as HTMLElement, graph, opts);
  doc.body.dataset.csReady = "true";
  return handle;
}
