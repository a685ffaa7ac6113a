/**
 * Experiment 2's question: which differences between groups exceed prompt-to-prompt variation. Each
 * group is compared with the focus group on a few per-prompt metrics by the bootstrap test of a
 * difference of means, and the whole family of p-values is Holm-adjusted.
 */
import { bootstrapDifference, holmAdjust } from "../analysis/stats.ts";
import type { Comparison } from "./results.ts";

/** Per-prompt values of one metric in each group. */
export interface MetricSamples {
  metric: string;
  byGroup: Map<string, number[]>;
}

/**
 * Resamples for a family of m tests: a bootstrap p-value cannot go below 2 / (B + 1), and Holm multiplies
 * the smallest by m, so B must exceed about 2m / alpha for anything to be declared significant. Use
 * ten times that (and at least `min`).
 */
export function resamplesForFamily(m: number, alpha: number, min: number): number {
  return Math.max(min, Math.ceil((20 * m) / alpha));
}

export function compareWithFocus(
  metrics: readonly MetricSamples[],
  focus: string,
  opts: { alpha: number; resamples: number; seed: number },
): Comparison[] {
  const m = metrics.reduce((n, x) => n + x.byGroup.size - (x.byGroup.has(focus) ? 1 : 0), 0);
  const resamples = resamplesForFamily(m, opts.alpha, opts.resamples);
  const raw: Omit<Comparison, "pHolm" | "significant">[] = [];
  metrics.forEach((m, mi) => {
    const base = m.byGroup.get(focus);
    if (!base) throw new Error(`metric ${m.metric} has no values for the focus group ${focus}`);
    let gi = 0;
    for (const [group, values] of m.byGroup) {
      gi++;
      if (group === focus) continue;
      const t = bootstrapDifference(values, base, {
        resamples,
        level: 1 - opts.alpha,
        seed: opts.seed + 1000 * mi + gi,
      });
      raw.push({
        metric: m.metric,
        group,
        against: focus,
        diff: t.diff,
        ciLow: t.ciLow,
        ciHigh: t.ciHigh,
        p: t.p,
      });
    }
  });
  const adjusted = holmAdjust(raw.map((c) => c.p));
  return raw.map((c, i) => ({ ...c, pHolm: adjusted[i], significant: adjusted[i] < opts.alpha }));
}
