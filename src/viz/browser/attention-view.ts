import { formatValue } from "../color-scale.ts";
import type { AttentionData } from "../figure.ts";
import { displayToken } from "../token-labels.ts";
import { ATTENTION_SCALE, attentionGridSvg } from "../views/attention-svg.ts";

const TOP_K = 3;

/** The largest values among positions `from`..`to` (inclusive): the ones the causal mask lets through. */
function topK(values: number[], labels: string[], from: number, to: number): string {
  return values
    .map((v, i) => [v, i] as const)
    .filter(([, i]) => i >= from && i <= to)
    .sort((a, b) => b[0] - a[0])
    .slice(0, TOP_K)
    .map(([v, i]) => `<b>${escapeHtml(labels[i])}</b> ${formatValue(v)}`)
    .join(", ");
}

function escapeHtml(s: string): string {
  return s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;");
}

export interface AttentionViewOptions {
  /** Label of the head to open first (default: the first head). */
  head?: string;
  /** Called with a head's label when the reader opens it (not for the first head shown). */
  onSelect?: (label: string) => void;
}

/**
 * Interactive attention view: head tabs, a token strip, and the head's [dest x src] grid (the same SVG as
 * the paper export). Hovering token i (in the strip or on either axis) outlines row i (what i attends to)
 * and column i (what attends to i), dims the rest, colours the strip by row i and lists the top values.
 */
export function mountAttentionView(
  el: HTMLElement,
  data: AttentionData,
  opts: AttentionViewOptions = {},
): void {
  const labels = data.tokens.map((t, i) => `${i}: ${displayToken(t)}`);
  el.classList.add("cs-attention");
  el.innerHTML = "";
  const tabs = el.appendChild(document.createElement("div"));
  tabs.className = "cs-head-tabs";
  tabs.setAttribute("role", "tablist");
  const strip = el.appendChild(document.createElement("div"));
  strip.className = "cs-token-strip";
  const info = el.appendChild(document.createElement("div"));
  info.className = "cs-info";
  const gridHost = el.appendChild(document.createElement("div"));
  gridHost.className = "cs-grid-host";

  let head = 0;
  const tokenSpans = data.tokens.map((t, i) => {
    const span = strip.appendChild(document.createElement("span"));
    span.className = "cs-tok";
    span.dataset.index = String(i);
    span.appendChild(document.createElement("span")).textContent = displayToken(t);
    const weight = span.appendChild(document.createElement("span"));
    weight.className = "cs-w";
    return span;
  });
  const idleInfo = "Hover a token to see what it attends to (its row) and what attends to it (its column).";

  const clear = () => {
    for (const c of gridHost.querySelectorAll(".cs-cell, .cs-label"))
      c.classList.remove("cs-dim", "cs-row", "cs-col", "cs-focus");
    for (const s of tokenSpans) {
      s.classList.remove("cs-focus");
      s.style.background = "";
      s.style.color = "";
      s.querySelector(".cs-w")!.textContent = "";
    }
    info.textContent = idleInfo;
  };

  const focusToken = (i: number) => {
    clear();
    const pattern = data.heads[head].pattern;
    for (const c of gridHost.querySelectorAll<SVGRectElement>(".cs-cell")) {
      const d = Number(c.dataset.dest);
      const s = Number(c.dataset.src);
      if (d === i) c.classList.add("cs-row");
      if (s === i) c.classList.add("cs-col");
      if (d !== i && s !== i) c.classList.add("cs-dim");
    }
    for (const l of gridHost.querySelectorAll<SVGTextElement>(`.cs-label[data-index="${i}"]`))
      l.classList.add("cs-focus");
    tokenSpans.forEach((span, j) => {
      const v = pattern[i][j];
      span.style.background = ATTENTION_SCALE.color(v);
      span.style.color = ATTENTION_SCALE.textColor(v);
      // Percent keeps the strip compact; exact values are in the info line and the cell hover.
      span.querySelector(".cs-w")!.textContent = `${Math.round(v * 100)}%`;
    });
    tokenSpans[i].classList.add("cs-focus");
    const column = pattern.map((row) => row[i]);
    // Causal attention: token i attends to positions 0..i and is attended to by i..n-1 only; the
    // masked positions (weight 0 by construction) are no finding and are left out of both lists.
    info.innerHTML =
      `<div><b>${escapeHtml(labels[i])}</b> attends to: ${topK(pattern[i], labels, 0, i)}</div>` +
      `<div>attended to by: ${topK(column, labels, i, column.length - 1)}</div>`;
  };

  const focusCell = (d: number, s: number, cell: Element) => {
    clear();
    cell.classList.add("cs-focus");
    info.innerHTML = `<b>${escapeHtml(labels[d])}</b> → <b>${escapeHtml(labels[s])}</b>: ${formatValue(data.heads[head].pattern[d][s])}`;
  };

  const showHead = (h: number) => {
    head = h;
    tabs.querySelectorAll("button").forEach((b, k) => {
      b.setAttribute("aria-selected", String(k === h));
    });
    gridHost.innerHTML = attentionGridSvg(data.tokens, data.heads[h].pattern, data.heads[h].label);
    clear();
  };

  // Heads named LxHy get an all-heads grid of thumbnails (layer rows, head columns, as CircuitsVis'
  // attention_heads): every pattern at a glance, click one to open it below.
  const places = data.heads.map((h) => /^L(\d+)H(\d+)$/.exec(h.label));
  const asGrid = data.heads.length >= 4 && places.every((m) => m !== null);
  // Rows and columns are the layers and heads present, in order (no empty rows for a subset of heads).
  const rank = (i: 1 | 2) => {
    const values = [...new Set(places.map((m) => Number(m?.[i])))].sort((a, b) => a - b);
    return (v: number) => values.indexOf(v) + 1;
  };
  const [rowOf, colOf] = [rank(1), rank(2)];
  if (asGrid) tabs.classList.add("cs-head-grid");
  data.heads.forEach((h, k) => {
    const b = tabs.appendChild(document.createElement("button"));
    b.type = "button";
    b.setAttribute("role", "tab");
    b.title = h.label;
    if (asGrid) {
      const [, layer, head] = places[k]!;
      b.style.gridRow = String(rowOf(Number(layer)));
      b.style.gridColumn = String(colOf(Number(head)));
      b.appendChild(thumbnail(h.pattern));
      b.appendChild(document.createElement("span")).textContent = h.label;
    } else b.textContent = h.label;
    b.addEventListener("click", () => {
      showHead(k);
      opts.onSelect?.(h.label);
    });
  });

  // Delegated listeners survive the grid being replaced when the head changes.
  strip.addEventListener("mouseover", (e) => {
    const t = (e.target as Element).closest<HTMLElement>(".cs-tok");
    if (t) focusToken(Number(t.dataset.index));
  });
  gridHost.addEventListener("mouseover", (e) => {
    const target = e.target as Element;
    const label = target.closest<SVGTextElement>(".cs-label");
    if (label) return focusToken(Number(label.dataset.index));
    const cell = target.closest<SVGRectElement>(".cs-cell");
    if (cell) focusCell(Number(cell.dataset.dest), Number(cell.dataset.src), cell);
  });
  strip.addEventListener("mouseleave", clear);
  gridHost.addEventListener("mouseleave", clear);
  showHead(
    Math.max(
      0,
      data.heads.findIndex((h) => h.label === opts.head),
    ),
  );
}

/** A pattern as a tiny image (one pixel per cell, scaled up by CSS without smoothing). */
function thumbnail(pattern: number[][]): HTMLCanvasElement {
  const n = pattern.length;
  const canvas = document.createElement("canvas");
  canvas.className = "cs-thumb";
  canvas.width = n;
  canvas.height = n;
  const ctx = canvas.getContext("2d");
  if (!ctx) return canvas;
  for (let d = 0; d < n; d++)
    for (let s = 0; s < n; s++) {
      ctx.fillStyle = ATTENTION_SCALE.color(pattern[d][s]);
      ctx.fillRect(s, d, 1, 1);
    }
  return canvas;
}
