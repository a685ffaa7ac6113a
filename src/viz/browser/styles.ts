/** CSS for the hand-written views and figure frames; injected once per document by `mountFigure`. */
export const VIZ_CSS = `
.cs-figure-body { overflow-x: auto; }
.cs-view-title { font: bold 13px 'DejaVu Sans', 'Liberation Sans', Helvetica, Arial, sans-serif; margin: 2px 0 8px; }
.cs-attention { font-family: 'DejaVu Sans', 'Liberation Sans', Helvetica, Arial, sans-serif; font-size: 13px; }
.cs-head-tabs { display: flex; flex-wrap: wrap; gap: 4px; margin-bottom: 8px; }
.cs-head-tabs button { font: inherit; padding: 3px 10px; border: 1px solid #bbb; background: #f6f6f6; color: #222; border-radius: 4px; cursor: pointer; }
.cs-head-tabs button[aria-selected="true"] { background: #08519c; color: #fff; border-color: #08519c; }
.cs-head-tabs.cs-head-grid { display: grid; grid-auto-columns: max-content; gap: 3px; }
.cs-head-grid button { display: flex; flex-direction: column; align-items: center; padding: 2px; font-size: 9px; line-height: 1.1; }
.cs-head-grid button .cs-thumb { width: 52px; height: 52px; image-rendering: pixelated; border: 1px solid #ccc; background: #fff; }
.cs-head-grid button[aria-selected="true"] .cs-thumb { border-color: #fff; }
.cs-token-strip { font-family: 'DejaVu Sans Mono', Menlo, Consolas, monospace; display: flex; flex-wrap: wrap; gap: 3px; margin: 4px 0; }
.cs-token-strip .cs-tok { display: inline-flex; flex-direction: column; align-items: center; padding: 2px 3px 1px; border-radius: 3px; border: 1px solid #ddd; cursor: default; white-space: pre; }
.cs-token-strip .cs-tok.cs-focus { outline: 2px solid #111; }
/* The weight line is always there (blank when idle) so hovering never shifts the tokens under the mouse. */
.cs-token-strip .cs-tok .cs-w { font-size: 9px; min-width: 4ch; min-height: 1.2em; text-align: center; opacity: 0.85; }
.cs-info { min-height: 2.6em; color: #333; margin: 4px 0 6px; font-size: 12px; }
.cs-info b { font-family: 'DejaVu Sans Mono', Menlo, Consolas, monospace; font-weight: normal; background: #eee; padding: 0 3px; border-radius: 2px; }
.cs-attention-grid .cs-cell.cs-dim { opacity: 0.2; }
.cs-attention-grid .cs-cell.cs-row, .cs-attention-grid .cs-cell.cs-col { stroke: #111; stroke-width: 0.6; }
.cs-attention-grid .cs-cell.cs-focus { stroke: #d94801; stroke-width: 2; }
.cs-attention-grid .cs-label { cursor: default; }
.cs-attention-grid .cs-label.cs-focus { font-weight: bold; fill: #d94801; }
.cs-token-view .cs-token { cursor: default; }
.cs-token-view .cs-token.cs-focus rect { stroke: #111; stroke-width: 1.5; }
.cs-graph-view { font: 12px 'DejaVu Sans', 'Liberation Sans', Helvetica, Arial, sans-serif; }
.cs-graph-toolbar { display: flex; flex-wrap: wrap; gap: 6px; align-items: center; margin-bottom: 4px; }
.cs-graph-toolbar .cs-hint, .cs-edge-unit { color: #555; }
.cs-edge-unit { margin: 2px 0 6px; }
.cs-graph-body { display: flex; gap: 12px; align-items: flex-start; }
.cs-graph-scroll { overflow: auto; max-height: 80vh; border: 1px solid #e4e4e4; flex: 1 1 auto; min-width: 0; }
.cs-graph-side { flex: 0 0 320px; max-height: 80vh; overflow: auto; }
.cs-graph-side h4 { margin: 10px 0 4px; font-size: 12px; }
.cs-graph-side ol, .cs-graph-side ul { margin: 2px 0; padding-left: 1.4em; }
.cs-graph-side .cs-w { font-variant-numeric: tabular-nums; display: inline-block; min-width: 5ch; }
.cs-node-info { min-height: 6em; }
.cs-info-title { font-weight: bold; }
.cs-list-title { margin-top: 4px; color: #444; }
.cs-swatch { display: inline-block; width: 10px; height: 10px; margin-right: 4px; border-radius: 2px; }
.cs-subgraph td { padding: 1px 4px; }
.cs-graph-stack { position: relative; background: #fff; }
.cs-graph-stack > svg { position: absolute; left: 0; top: 0; }
/* Its own compositing layer: fading it or restyling a node above it never redraws the edges. */
.cs-graph-stack > svg.cs-graph-edges { will-change: opacity; }
svg.cs-graph .cs-gnode { cursor: default; }
svg.cs-graph .cs-gnode.cs-pinned .cs-shape { stroke: #000; stroke-width: 2.5; }
svg.cs-graph .cs-gnode.cs-clicked .cs-shape { stroke-dasharray: 2 1.5; }
.cs-tip { position: fixed; pointer-events: none; z-index: 1000; background: #fff; border: 1px solid #999; border-radius: 3px; padding: 4px 7px; font: 12px 'DejaVu Sans', Arial, sans-serif; box-shadow: 0 1px 4px rgba(0,0,0,.2); white-space: pre; }
`;

export function injectStyles(doc: Document): void {
  if (doc.getElementById("cs-viz-styles")) return;
  const style = doc.createElement("style");
  style.id = "cs-viz-styles";
  style.textContent = VIZ_CSS;
  doc.head.appendChild(style);
}
