import { type ColorScale, domainOf, formatValue, makeColorScale } from "../color-scale.ts";
import type { TokenViewData } from "../figure.ts";
import { displayToken } from "../token-labels.ts";
import {
  escapeXml,
  legendSvg,
  MONO_FONT,
  monoWidth,
  SANS_FONT,
  sansWidth,
  svgIdPrefix,
} from "./svg-parts.ts";

const FONT_SIZE = 13;
const LINE_H = 22;
const MAX_WIDTH = 760;
const PAD = 10;

export function validateTokenView(data: TokenViewData): void {
  if (data.samples.length === 0) throw new Error("token view: samples is empty; pass at least one sample.");
  data.samples.forEach((s, k) => {
    if (s.tokens.length !== s.values.length) {
      throw new Error(
        `token view: sample ${k} has ${s.tokens.length} tokens but ${s.values.length} values; pass one value per token.`,
      );
    }
    s.values.forEach((v, i) => {
      if (!Number.isFinite(v))
        throw new Error(`token view: sample ${k} value ${i} is ${v}; pass finite values.`);
    });
  });
  if (data.domain && !(data.domain[0] < data.domain[1])) {
    throw new Error(`token view: domain [${data.domain.join(", ")}] must be [low, high] with low < high.`);
  }
}

export function tokenViewScale(data: TokenViewData): ColorScale {
  const domain =
    data.domain ??
    domainOf(
      data.scale,
      data.samples.flatMap((s) => s.values),
    );
  return makeColorScale(data.scale, domain);
}

/**
 * Text coloured by value, one block per sample, wrapped at a fixed width; tokens are `g.cs-token` groups
 * with data-sample/data-index/data-value, and a <title> so standalone SVG viewers also show the value.
 */
export function tokenViewSvg(data: TokenViewData, title: string): string {
  validateTokenView(data);
  const scale = tokenViewScale(data);
  const parts: string[] = [];
  let y = PAD;
  if (title) {
    parts.push(
      `<text x="${PAD}" y="${y + 14}" font-size="15" font-weight="bold" fill="#111">${escapeXml(title)}</text>`,
    );
    y += 24;
  }
  let maxX = 0;
  data.samples.forEach((sample, k) => {
    if (sample.label !== undefined) {
      parts.push(
        `<text x="${PAD}" y="${y + 13}" font-size="12" fill="#555">${escapeXml(sample.label)}</text>`,
      );
      y += 20;
    }
    let x = PAD;
    sample.tokens.forEach((tok, i) => {
      const text = displayToken(tok);
      const w = monoWidth(text, FONT_SIZE) + 4;
      if (x + w > MAX_WIDTH - PAD && x > PAD) {
        x = PAD;
        y += LINE_H;
      }
      const v = sample.values[i];
      parts.push(
        `<g class="cs-token" data-sample="${k}" data-index="${i}" data-value="${v}">` +
          `<rect x="${x}" y="${y}" width="${w}" height="${LINE_H - 3}" rx="2" fill="${scale.color(v)}"/>` +
          `<text x="${x + 2}" y="${y + 14}" font-family="${MONO_FONT}" font-size="${FONT_SIZE}" fill="${scale.textColor(v)}" xml:space="preserve">${escapeXml(text)}</text>` +
          `<title>${escapeXml(`${i}: ${text} = ${formatValue(v)}`)}</title></g>`,
      );
      x += w + 1;
      maxX = Math.max(maxX, x);
      // A newline token ends the visual line too, so multi-line text keeps its shape.
      if (/\n/.test(tok)) {
        x = PAD;
        y += LINE_H;
      }
    });
    y += LINE_H + 8;
  });
  const legend = legendSvg(scale, data.valueLabel, PAD, y, 220, svgIdPrefix("tokens", JSON.stringify(data)));
  parts.push(legend.svg);
  y += legend.height;
  // Sized to its widest text (title, sample labels, legend) as well as its tokens: nothing is cut.
  const textW = Math.max(
    title ? sansWidth(title, 15, true) : 0,
    ...data.samples.map((s) => (s.label === undefined ? 0 : sansWidth(s.label, 12))),
    legend.width,
  );
  const width = Math.ceil(Math.max(maxX, 240, PAD + textW) + PAD);
  const height = Math.ceil(y + PAD);
  return `<svg xmlns="http://www.w3.org/2000/svg" class="cs-token-view" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="${SANS_FONT}"><rect width="100%" height="100%" fill="#fff"/>${parts.join("")}</svg>`;
}
