/**
 * Colour scales for the hand-written views (attention grid, token view), shared by their SVG and browser
 * renderings. Charts use Vega's own schemes; these match them in spirit: diverging is red (negative) -
 * neutral grey (0) - blue (positive), like plotly's RdBu used by TransformerLens plots.
 */

type Rgb = [number, number, number];

const WHITE: Rgb = [255, 255, 255];
/** The diverging middle: a neutral grey (R = G = B), as in the charts' DIVERGING_RANGE. */
const MID: Rgb = [240, 240, 240];
const NEG: Rgb = [178, 24, 43];
const POS: Rgb = [33, 102, 172];
const SEQ: Rgb = [8, 81, 156];

function mix(a: Rgb, b: Rgb, t: number): Rgb {
  return [0, 1, 2].map((i) => Math.round(a[i] + (b[i] - a[i]) * t)) as Rgb;
}

function hex([r, g, b]: Rgb): string {
  return `#${[r, g, b].map((c) => c.toString(16).padStart(2, "0")).join("")}`;
}

export interface ColorScale {
  kind: "diverging" | "sequential";
  domain: [number, number];
  color(value: number): string;
  /** Black or white, whichever reads better on `color(value)`. */
  textColor(value: number): string;
}

/** Fraction in [0, 1] of the way to the strong colour at `value`. */
function intensity(kind: ColorScale["kind"], [lo, hi]: [number, number], value: number): number {
  if (!Number.isFinite(value)) return 0;
  if (kind === "diverging") {
    const m = Math.max(Math.abs(lo), Math.abs(hi)) || 1;
    return Math.min(1, Math.abs(value) / m);
  }
  const span = hi - lo || 1;
  return Math.min(1, Math.max(0, (value - lo) / span));
}

export function makeColorScale(kind: ColorScale["kind"], domain: [number, number]): ColorScale {
  const rgb = (value: number): Rgb => {
    const t = intensity(kind, domain, value);
    if (kind === "sequential") return mix(WHITE, SEQ, t);
    return mix(MID, value < 0 ? NEG : POS, t);
  };
  return {
    kind,
    domain,
    color: (v) => hex(rgb(v)),
    textColor: (v) => {
      const [r, g, b] = rgb(v);
      return 0.299 * r + 0.587 * g + 0.114 * b < 140 ? "#ffffff" : "#111111";
    },
  };
}

/** Symmetric domain [-m, m] for diverging scales, [min(0, lo), hi] for sequential ones. */
export function domainOf(kind: ColorScale["kind"], values: Iterable<number>): [number, number] {
  let lo = Number.POSITIVE_INFINITY;
  let hi = Number.NEGATIVE_INFINITY;
  for (const v of values) {
    if (!Number.isFinite(v)) continue;
    if (v < lo) lo = v;
    if (v > hi) hi = v;
  }
  if (lo > hi) return kind === "diverging" ? [-1, 1] : [0, 1];
  if (kind === "diverging") {
    const m = Math.max(Math.abs(lo), Math.abs(hi)) || 1;
    return [-m, m];
  }
  const l = Math.min(0, lo);
  return [l, hi > l ? hi : l + 1];
}

/** Short number for labels and tooltips: 4 significant digits, no trailing zeros. */
export function formatValue(v: number): string {
  if (!Number.isFinite(v)) return String(v);
  if (v === 0) return "0";
  return String(Number(v.toPrecision(4)));
}
