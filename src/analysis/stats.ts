/**
 * Summary statistics over prompts, with uncertainty: mean, standard deviation, standard error,
 * seeded percentile-bootstrap confidence intervals, a bootstrap test for the difference of two groups'
 * means, and Holm's correction for testing several differences at once.
 *
 * Method (stated in reports via `BOOTSTRAP_METHOD`): prompts are the resampling unit. A confidence
 * interval is the percentile interval of the statistic over `resamples` resamples drawn with
 * replacement. The two-group test resamples each group independently (units the two share as pairs); its p-value is two-sided and
 * inverts the percentile interval of the difference: p = 2 * min(P*(d <= 0), P*(d >= 0)), with the
 * usual (count + 1) / (resamples + 1) correction so that p is never exactly 0. So the (1 - alpha)
 * interval of the difference excludes 0 exactly when p < alpha (up to the +1 correction).
 */
import { mulberry32 } from "../util/random.ts";

export const BOOTSTRAP_METHOD =
  "Percentile bootstrap over prompts (each group resampled with replacement, fixed seed). " +
  "A difference between two groups is tested by resampling both groups independently, except that prompts " +
  "the two groups share (the same text, e.g. with the roles swapped) are resampled as pairs; the two-sided " +
  "p-value is 2·min(P*(diff ≤ 0), P*(diff ≥ 0)) with a +1 correction; p-values of a family of " +
  "comparisons are adjusted with Holm's step-down method.";

export interface BootstrapOptions {
  /** Number of bootstrap resamples (default 2000). */
  resamples?: number;
  /** Confidence level of intervals (default 0.95). */
  level?: number;
  /** Seed of the resampling generator (default 0). */
  seed?: number;
}

/** A mean with its spread and a bootstrap confidence interval. */
export interface MeanSummary {
  n: number;
  mean: number;
  sd: number;
  se: number;
  ciLow: number;
  ciHigh: number;
  level: number;
}

export interface DifferenceTest {
  /** mean(a) - mean(b). */
  diff: number;
  ciLow: number;
  ciHigh: number;
  level: number;
  /** Two-sided bootstrap p-value (unadjusted). */
  p: number;
}

function checkSample(xs: readonly number[], what: string): void {
  if (xs.length === 0) throw new Error(`${what}: the sample is empty; give at least one value.`);
  for (const x of xs) {
    if (!Number.isFinite(x))
      throw new Error(`${what}: the sample holds ${x}; all values must be finite numbers.`);
  }
}

export function mean(xs: readonly number[]): number {
  checkSample(xs, "mean");
  let s = 0;
  for (const x of xs) s += x;
  return s / xs.length;
}

/** Sample standard deviation (divisor n - 1); 0 for a single value. */
export function sd(xs: readonly number[]): number {
  const m = mean(xs);
  if (xs.length < 2) return 0;
  let ss = 0;
  for (const x of xs) ss += (x - m) * (x - m);
  return Math.sqrt(ss / (xs.length - 1));
}

/** Standard error of the mean, sd / sqrt(n). */
export function standardError(xs: readonly number[]): number {
  return sd(xs) / Math.sqrt(xs.length);
}

/** The q-quantile (0..1) of sorted values, linear interpolation between order statistics (numpy's default). */
export function quantileSorted(sorted: ArrayLike<number>, q: number): number {
  const n = sorted.length;
  if (n === 0) throw new Error("quantileSorted: no values.");
  const h = (n - 1) * Math.min(1, Math.max(0, q));
  const lo = Math.floor(h);
  const hi = Math.min(n - 1, lo + 1);
  return sorted[lo] + (h - lo) * (sorted[hi] - sorted[lo]);
}

function resolve(opts: BootstrapOptions): Required<BootstrapOptions> {
  const resamples = opts.resamples ?? 2000;
  const level = opts.level ?? 0.95;
  if (!Number.isInteger(resamples) || resamples < 1) {
    throw new Error(`resamples must be a positive integer, got ${resamples}.`);
  }
  if (!(level > 0 && level < 1)) throw new Error(`level must lie strictly between 0 and 1, got ${level}.`);
  return { resamples, level, seed: opts.seed ?? 0 };
}

/** Means of `resamples` bootstrap resamples of xs, drawn from `rand`. */
function bootstrapMeans(xs: readonly number[], resamples: number, rand: () => number): Float64Array {
  const n = xs.length;
  const out = new Float64Array(resamples);
  for (let r = 0; r < resamples; r++) {
    let s = 0;
    for (let i = 0; i < n; i++) s += xs[Math.floor(rand() * n)];
    out[r] = s / n;
  }
  return out;
}

/** Mean, sd, se and a percentile-bootstrap confidence interval of the mean. */
export function summarize(xs: readonly number[], opts: BootstrapOptions = {}): MeanSummary {
  checkSample(xs, "summarize");
  const { resamples, level, seed } = resolve(opts);
  const means = bootstrapMeans(xs, resamples, mulberry32(seed)).sort();
  const alpha = 1 - level;
  return {
    n: xs.length,
    mean: mean(xs),
    sd: sd(xs),
    se: standardError(xs),
    ciLow: quantileSorted(means, alpha / 2),
    ciHigh: quantileSorted(means, 1 - alpha / 2),
    level,
  };
}

/**
 * Units two samples share: `[i, j]` says a[i] and b[j] were measured on the same unit (e.g. the same text
 * with its roles swapped), so they are resampled together.
 */
export type SharedUnits = readonly (readonly [number, number])[];

/** Means of a and b over `resamples` resamples that draw shared units jointly and the others independently. */
function pairedBootstrapMeans(
  a: readonly number[],
  b: readonly number[],
  shared: SharedUnits,
  resamples: number,
  rand: () => number,
): [Float64Array, Float64Array] {
  const inA = new Set(shared.map(([i]) => i));
  const inB = new Set(shared.map(([, j]) => j));
  if (inA.size !== shared.length || inB.size !== shared.length)
    throw new Error("bootstrapDifference: a unit is shared twice; each a[i] and b[j] may be paired once.");
  const onlyA = a.flatMap((x, i) => (inA.has(i) ? [] : [x]));
  const onlyB = b.flatMap((x, j) => (inB.has(j) ? [] : [x]));
  const ma = new Float64Array(resamples);
  const mb = new Float64Array(resamples);
  const k = shared.length;
  for (let r = 0; r < resamples; r++) {
    let sa = 0;
    let sb = 0;
    for (let t = 0; t < k; t++) {
      const [i, j] = shared[Math.floor(rand() * k)];
      sa += a[i];
      sb += b[j];
    }
    for (let t = 0; t < onlyA.length; t++) sa += onlyA[Math.floor(rand() * onlyA.length)];
    for (let t = 0; t < onlyB.length; t++) sb += onlyB[Math.floor(rand() * onlyB.length)];
    ma[r] = sa / a.length;
    mb[r] = sb / b.length;
  }
  return [ma, mb];
}

/**
 * Bootstrap CI and two-sided p-value for mean(a) - mean(b). Without `shared`, a and b are independent
 * samples; with it, the units they share are resampled as pairs (each resample draws a shared unit's a and
 * b values together) and the rest of each sample independently, so evidence measured on one unit twice is
 * not counted as two independent draws.
 */
export function bootstrapDifference(
  a: readonly number[],
  b: readonly number[],
  opts: BootstrapOptions & { shared?: SharedUnits } = {},
): DifferenceTest {
  checkSample(a, "bootstrapDifference (first group)");
  checkSample(b, "bootstrapDifference (second group)");
  const { resamples, level, seed } = resolve(opts);
  const rand = mulberry32(seed);
  const [ma, mb] = opts.shared?.length
    ? pairedBootstrapMeans(a, b, opts.shared, resamples, rand)
    : [bootstrapMeans(a, resamples, rand), bootstrapMeans(b, resamples, rand)];
  const diffs = new Float64Array(resamples);
  let atOrBelow = 0;
  let atOrAbove = 0;
  for (let r = 0; r < resamples; r++) {
    const d = ma[r] - mb[r];
    diffs[r] = d;
    if (d <= 0) atOrBelow++;
    if (d >= 0) atOrAbove++;
  }
  diffs.sort();
  const alpha = 1 - level;
  const p = Math.min(1, (2 * (Math.min(atOrBelow, atOrAbove) + 1)) / (resamples + 1));
  return {
    diff: mean(a) - mean(b),
    ciLow: quantileSorted(diffs, alpha / 2),
    ciHigh: quantileSorted(diffs, 1 - alpha / 2),
    level,
    p,
  };
}

/**
 * Holm's step-down adjustment: sort p ascending, adjusted p_(i) = max_{j <= i} min(1, (m - j + 1) p_(j)).
 * Returned in the input order. Rejecting where adjusted p < alpha controls the family-wise error rate.
 */
export function holmAdjust(pValues: readonly number[]): number[] {
  const m = pValues.length;
  for (const p of pValues) {
    if (!(p >= 0 && p <= 1)) throw new Error(`holmAdjust: p-value ${p} is not in [0, 1].`);
  }
  const order = pValues.map((p, i) => ({ p, i })).sort((x, y) => x.p - y.p);
  const adjusted = new Array<number>(m);
  let running = 0;
  order.forEach(({ p, i }, rank) => {
    running = Math.max(running, Math.min(1, (m - rank) * p));
    adjusted[i] = running;
  });
  return adjusted;
}

/**
 * Decimals that show a spread (an SE or an interval's width) with two significant digits when `digits`
 * would round it to 0: a spread of 0.0004 prints as "0.00040", never as "0.00", which reads as none.
 */
function spreadDigits(spread: number, digits: number): number {
  if (!(spread > 0) || Number(spread.toFixed(digits)) > 0) return digits;
  return Math.min(12, Math.max(digits, 1 - Math.floor(Math.log10(spread))));
}

/** Why a summary has no spread: one prompt, or every value equal. */
const noSpread = (n: number | undefined) => (n === 1 ? "n=1: no interval" : "every value equal: no spread");

/**
 * "2.31 ± 0.12" (mean ± standard error), the form used in captions; a tiny SE gets the digits it needs
 * ("0.0012 ± 0.00040"), and none says why ("2.31 (n=1: no interval)").
 */
export function formatMeanSe(s: Pick<MeanSummary, "mean" | "se"> & { n?: number }, digits = 2): string {
  if (s.se === 0) return `${s.mean.toFixed(digits)} (${noSpread(s.n)})`;
  const d = spreadDigits(s.se, digits);
  return `${s.mean.toFixed(d)} ± ${s.se.toFixed(d)}`;
}

/**
 * "2.31 [2.08, 2.55]" (mean and confidence interval); a narrow interval gets the digits it needs to show its
 * two ends apart, and an empty one says why ("2.31 (n=1: no interval)").
 */
export function formatMeanCi(
  s: Pick<MeanSummary, "mean" | "ciLow" | "ciHigh"> & { n?: number },
  digits = 2,
): string {
  if (s.ciHigh === s.ciLow) return `${s.mean.toFixed(digits)} (${noSpread(s.n)})`;
  const d = spreadDigits(s.ciHigh - s.ciLow, digits);
  return `${s.mean.toFixed(d)} [${s.ciLow.toFixed(d)}, ${s.ciHigh.toFixed(d)}]`;
}

/** "+0.78", "−0.44" (a true minus sign), "0.00": a signed difference, never "+ -0.44" or "-0.00". */
export function formatSigned(x: number, digits = 2): string {
  const t = Math.abs(x).toFixed(digits);
  if (Number(t) === 0) return t;
  return `${x < 0 ? "−" : "+"}${t}`;
}
