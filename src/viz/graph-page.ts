/**
 * `graph --html`: one self-contained page (no network: a Content-Security-Policy allows only its own inline
 * script and styles) drawing an attribution graph from circuit-tracer's front-end JSON, with the inputs it was
 * computed from stated above it. The drawing and its interaction are src/viz/browser/graph-view.ts, in the
 * same browser bundle as the reports (inlined; a study's graph page loads its report's shared copy).
 */
import { preCapNote } from "../analysis/logit-attribution.ts";
import { checkFrontEndGraph } from "../graphs/front-end-check.ts";
import type { FrontEndGraph } from "../graphs/graph-files.ts";
import type { GraphViewOptions } from "./browser/graph-view.ts";
import { formatValue } from "./color-scale.ts";
import { writeFileAtomic } from "./export/write-files.ts";
import { inputsHtml, jsonForScript, PAGE_CSS, type ReportInputs } from "./html/report.ts";
import { type SharedVizScript, vizScriptTags } from "./html/viz-script.ts";
import { escapeXml as escapeHtml } from "./views/svg-parts.ts";

export interface GraphPageOptions {
  /** Page title (default: "Attribution graph: " + the slug). */
  title?: string;
  /** The model the graph was computed on, as the user named it. */
  model?: string;
  /**
   * The model's final-logit soft-cap, if any: the page then says the edges into logit nodes are of the pre-cap
   * logits and the nodes' probabilities after the cap (preCapNote). Not given: nothing is said.
   */
  finalSoftCap?: number | null;
  /** The pruning's edge threshold (the node threshold is in the graph's metadata). */
  edgeThreshold?: number;
  /** circuit-tracer's `compute_graph_scores`, on the unpruned graph. */
  scores?: { replacement: number; completeness: number };
  /** A feature's page, `{layer}` `{feature}` `{ctx_idx}` `{node_id}` filled in (see GraphViewOptions). */
  featureUrl?: string;
  /** Edges listed per direction on hover (default 5). */
  topK?: number;
  /** One of a set of pages in a directory: load the bundle from their shared file (default: inline it). */
  vizScript?: SharedVizScript;
}

const cspAllowingScripts = (scriptSrc: string) =>
  `default-src 'none'; script-src ${scriptSrc}; style-src 'unsafe-inline'; img-src data: blob:; base-uri 'none'; form-action 'none'`;

/** Only the page's own inline script and styles; no fetch, image or frame from anywhere. */
export const GRAPH_PAGE_CSP = cspAllowingScripts("'unsafe-inline'");

/**
 * The page's CSP. With a shared bundle, only the two script elements carrying its nonce run: the bundle's
 * file and the inline call that mounts the page.
 */
export function graphPageCsp(shared?: SharedVizScript): string {
  return shared ? cspAllowingScripts(`'nonce-${shared.nonce}'`) : GRAPH_PAGE_CSP;
}

const notGiven = "not given";

/** What the page states the graph was made from; a value the caller did not give reads "not given", never 0. */
export function graphPageInputs(graph: FrontEndGraph, opts: GraphPageOptions): ReportInputs {
  const m = graph.metadata;
  const nFeatures = graph.nodes.filter((n) => n.feature_type === "cross layer transcoder").length;
  const preCap = preCapNote(opts.finalSoftCap, "graph edges").trim();
  return [
    { label: "Model", value: opts.model ?? notGiven },
    { label: "Prompt", value: m.prompt ?? notGiven },
    { label: "Prompt tokens", value: String(m.prompt_tokens.length) },
    {
      label: "Transcoders",
      value: [m.scan, ...(m.transcoder_list ?? [])].filter((s) => s).join(", ") || notGiven,
    },
    {
      label: "Thresholds",
      value: `node ${typeof m.node_threshold === "number" ? formatValue(m.node_threshold) : notGiven}, edge ${opts.edgeThreshold === undefined ? notGiven : formatValue(opts.edgeThreshold)}`,
    },
    {
      label: "Scores",
      value: opts.scores
        ? `replacement ${formatValue(opts.scores.replacement)}, completeness ${formatValue(opts.scores.completeness)}`
        : notGiven,
    },
    {
      label: "Kept",
      value: `${graph.nodes.length} nodes (${nFeatures} features), ${graph.links.length} edges`,
    },
    ...(preCap ? [{ label: "Logits", value: preCap }] : []),
  ];
}

const GRAPH_CSS = "body { max-width: none; margin: 16px; }";

export function renderGraphPage(graphJson: unknown, opts: GraphPageOptions = {}): string {
  const notes: string[] = [];
  const graph = checkFrontEndGraph(graphJson, "graph JSON", notes);
  const title = opts.title ?? `Attribution graph: ${graph.metadata.slug || graph.metadata.prompt}`;
  const view: GraphViewOptions = { featureUrl: opts.featureUrl, topK: opts.topK };
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="${graphPageCsp(opts.vizScript)}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${escapeHtml(title)}</title>
<style>${PAGE_CSS}${GRAPH_CSS}</style>
</head>
<body>
<h1>${escapeHtml(title)}</h1>
${inputsHtml([...graphPageInputs(graph, opts), ...(notes.length ? [{ label: "Notes", value: notes }] : [])])}
<div id="cs-graph"></div>
<script type="application/json" id="cs-graph-json">${jsonForScript(graph)}</script>
<script type="application/json" id="cs-graph-options">${jsonForScript(view)}</script>
${vizScriptTags("circuitscopeViz.mountGraphPage(document);", opts.vizScript)}
</body>
</html>
`;
}

/** Renders the page and writes it atomically. */
export function writeGraphPage(path: string, graphJson: unknown, opts: GraphPageOptions = {}): void {
  writeFileAtomic(path, renderGraphPage(graphJson, opts));
}
