import { formatValue, makeColorScale } from "../color-scale.ts";
import type { AttentionData } from "../figure.ts";
import { displayToken } from "../token-labels.ts";
import { escapeXml, legendSvg, MONO_FONT, monoWidth, SANS_FONT, sansWidth } from "./svg-parts.ts";

/** Attention weights are probabilities: one fixed 0..1 scale makes heads comparable. */
export const ATTENTION_SCALE = makeColorScale("sequential", [0, 1]);

const FONT_SIZE = 11;

export function validateAttention(data: AttentionData): void {
  const n = data.tokens.length;
  if (n === 0) throw new Error("attention view: tokens is empty; pass the prompt's string tokens.");
  if (data.heads.length === 0)
    throw new Error("attention view: heads is empty; pass at least one head's pattern.");
  for (const h of data.heads) {
    if (h.pattern.length !== n || h.pattern.some((row) => row.length !== n)) {
      throw new Error(
        `attention view: head "${h.label}" pattern must be [dest][src] = ${n} x ${n} (one row and column per token); got ${h.pattern.length} rows.`,
      );
    }
    h.pattern.forEach((row, i) => {
      row.forEach((v, j) => {
        if (!Number.isFinite(v)) {
          throw new Error(
            `attention view: head "${h.label}" pattern[${i}][${j}] is ${v}; pass finite weights.`,
          );
        }
      });
    });
  }
}

/**
 * One head's [dest x src] grid as SVG: destination tokens down the left, source tokens across the top.
 * Cells and labels carry data attributes (dest, src, value / axis, index) so the browser view can add
 * hover highlighting to this same drawing.
 */
export function attentionGridSvg(tokens: readonly string[], pattern: number[][], title: string): string {
  const n = tokens.length;
  const labels = tokens.map((t, i) => `${i}: ${displayToken(t)}`);
  const labelW = Math.max(...labels.map((l) => monoWidth(l, FONT_SIZE))) + 8;
  const cell = n <= 12 ? 26 : n <= 24 ? 20 : n <= 48 ? 14 : 10;
  const left = labelW + 24;
  const top = 28 + labelW + 6;
  const gridW = n * cell;
  const parts: string[] = [];
  parts.push(
    `<text x="${left}" y="16" font-size="13" font-weight="bold" fill="#111">${escapeXml(title)}</text>`,
    `<text x="${left + gridW / 2}" y="30" font-size="10" fill="#555" text-anchor="middle">source (key) →</text>`,
    `<text transform="translate(12 ${top + gridW / 2}) rotate(-90)" font-size="10" fill="#555" text-anchor="middle">destination (query) →</text>`,
  );
  for (let i = 0; i < n; i++) {
    const y = top + i * cell + cell / 2 + FONT_SIZE * 0.35;
    parts.push(
      `<text class="cs-label" data-axis="dest" data-index="${i}" x="${left - 6}" y="${y}" text-anchor="end" font-family="${MONO_FONT}" font-size="${FONT_SIZE}" fill="#222" xml:space="preserve">${escapeXml(labels[i])}</text>`,
    );
    const x = left + i * cell + cell / 2 + FONT_SIZE * 0.35;
    parts.push(
      `<text class="cs-label" data-axis="src" data-index="${i}" transform="translate(${x} ${top - 6}) rotate(-90)" font-family="${MONO_FONT}" font-size="${FONT_SIZE}" fill="#222" xml:space="preserve">${escapeXml(labels[i])}</text>`,
    );
  }
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < n; j++) {
      const v = pattern[i][j];
      parts.push(
        `<rect class="cs-cell" data-dest="${i}" data-src="${j}" data-value="${v}" x="${left + j * cell}" y="${top + i * cell}" width="${cell}" height="${cell}" fill="${ATTENTION_SCALE.color(v)}"><title>${escapeXml(`${labels[i]} → ${labels[j]}: ${formatValue(v)}`)}</title></rect>`,
      );
    }
  }
  parts.push(
    `<rect x="${left}" y="${top}" width="${gridW}" height="${gridW}" fill="none" stroke="#999" stroke-width="0.5" pointer-events="none"/>`,
  );
  // The gradient is the same for every grid (fixed 0..1 scale), so a shared id is harmless.
  const legend = legendSvg(ATTENTION_SCALE, "attention weight", left, top + gridW + 10, 160, "cs-attention");
  parts.push(legend.svg);
  const width = Math.ceil(
    Math.max(left + gridW, left + legend.width, left + sansWidth(title, 13, true), left + gridW / 2 + 60) +
      12,
  );
  const height = Math.ceil(top + gridW + 10 + legend.height + 6);
  return `<svg xmlns="http://www.w3.org/2000/svg" class="cs-attention-grid" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="${SANS_FONT}"><rect width="100%" height="100%" fill="#fff"/>${parts.join("")}</svg>`;
}

/** Every head's grid side by side in one SVG (for papers). */
export function attentionSvg(data: AttentionData, title: string): string {
  validateAttention(data);
  const grids = data.heads.map((h) => attentionGridSvg(data.tokens, h.pattern, h.label));
  const sizes = grids.map((g) => {
    const m = /width="(\d+)" height="(\d+)"/.exec(g)!;
    return [Number(m[1]), Number(m[2])];
  });
  const perRow = Math.min(grids.length, Math.max(1, Math.floor(1400 / sizes[0][0])));
  const titleH = 26;
  const cellW = Math.max(...sizes.map((s) => s[0]));
  const cellH = Math.max(...sizes.map((s) => s[1]));
  const rows = Math.ceil(grids.length / perRow);
  const width = Math.max(perRow * cellW, 8 + sansWidth(title, 15, true) + 8);
  const height = titleH + rows * cellH;
  const placed = grids.map((g, k) => {
    const x = (k % perRow) * cellW;
    const y = titleH + Math.floor(k / perRow) * cellH;
    return g.replace("<svg ", `<svg x="${x}" y="${y}" `);
  });
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="${SANS_FONT}"><rect width="100%" height="100%" fill="#fff"/><text x="8" y="18" font-size="15" font-weight="bold" fill="#111">${escapeXml(title)}</text>${placed.join("")}</svg>`;
}
