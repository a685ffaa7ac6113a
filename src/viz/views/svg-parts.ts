import { type ColorScale, formatValue } from "../color-scale.ts";

/** Escapes text for SVG/HTML element content and double-quoted attributes. */
export function escapeXml(text: string): string {
  return text
    .replace(/&/g, "&amp;")
    .replace(/</g, "&lt;")
    .replace(/>/g, "&gt;")
    .replace(/"/g, "&quot;")
    .replace(/'/g, "&#39;");
}

/** Token text is drawn in a monospace font so its width is known without measuring (DejaVu Sans Mono: 0.6 em). */
export const MONO_FONT = "'DejaVu Sans Mono', Menlo, Consolas, monospace";
export const SANS_FONT = "'DejaVu Sans', 'Liberation Sans', Helvetica, Arial, sans-serif";
export const MONO_CHAR_EM = 0.61;

export function monoWidth(text: string, fontSize: number): number {
  return [...text].length * fontSize * MONO_CHAR_EM;
}

/**
 * Width of proportional (DejaVu Sans) text, measured per character class and rounded up: wide enough that
 * an SVG sized with it never cuts a title or legend label (bold text is about 10% wider).
 */
export function sansWidth(text: string, fontSize: number, bold = false): number {
  let em = 0;
  for (const ch of text) {
    if (/[il.,:;'|!·\s]/.test(ch)) em += 0.32;
    else if (/[MWmw@%]/.test(ch)) em += 0.92;
    else if (/[A-Z0-9]/.test(ch)) em += 0.72;
    else em += 0.62;
  }
  return Math.ceil(em * fontSize * (bold ? 1.1 : 1));
}

/** A horizontal colour bar with its ends (and 0 for diverging scales) labelled; returns SVG and its height. */
export function legendSvg(
  scale: ColorScale,
  title: string,
  x: number,
  y: number,
  width: number,
  idPrefix: string,
): { svg: string; height: number; width: number } {
  const [lo, hi] = scale.domain;
  const stops = Array.from({ length: 11 }, (_, k) => {
    const v = lo + ((hi - lo) * k) / 10;
    return `<stop offset="${k * 10}%" stop-color="${scale.color(v)}"/>`;
  }).join("");
  const id = `${idPrefix}-legend`;
  const ticks: [number, string][] = [
    [0, formatValue(lo)],
    [1, formatValue(hi)],
  ];
  if (scale.kind === "diverging") ticks.push([0.5, "0"]);
  const tickSvg = ticks
    .map(([f, label]) => {
      const anchor = f === 0 ? "start" : f === 1 ? "end" : "middle";
      return `<text x="${x + f * width}" y="${y + 40}" font-size="10" text-anchor="${anchor}" fill="#333">${escapeXml(label)}</text>`;
    })
    .join("");
  const svg =
    `<g class="cs-legend"><defs><linearGradient id="${id}" x1="0" x2="1" y1="0" y2="0">${stops}</linearGradient></defs>` +
    `<text x="${x}" y="${y + 10}" font-size="11" fill="#333">${escapeXml(title)}</text>` +
    `<rect x="${x}" y="${y + 16}" width="${width}" height="12" fill="url(#${id})" stroke="#999" stroke-width="0.5"/>` +
    `${tickSvg}</g>`;
  return { svg, height: 46, width: Math.max(width, sansWidth(title, 11)) };
}

/** Deterministic id prefix for gradients, so two figures on one page do not share ids by accident. */
export function svgIdPrefix(kind: string, content: string): string {
  let h = 0x811c9dc5;
  for (let i = 0; i < content.length; i++) h = Math.imul(h ^ content.charCodeAt(i), 0x01000193);
  return `cs-${kind}-${(h >>> 0).toString(36)}`;
}
