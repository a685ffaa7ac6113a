/**
 * Experiment 2's question: which differences between groups exceed prompt-to-prompt variation. Each
 * group is compared with the focus group on a few per-prompt metrics by the bootstrap test of a
 * difference of means, and the whole family of p-values is Holm-adjusted. Prompts two groups share (a
 * mirror group's texts) are resampled as pairs; a mirror group's metric that is its original's by
 * construction is reported once and left out of the family.
 */
import { bootstrapDifference, holmAdjust, mean, type SharedUnits } from "../analysis/stats.ts";
import type { Comparison, MirroredMetric } from "./results.ts";

/** Per-prompt values of one metric in each group. */
export interface MetricSamples {
  metric: string;
  byGroup: Map<string, number[]>;
  /**
   * The metric is unchanged when clean and corrupted swap roles with answer and wrong (e.g. the clean -
   * corrupted gap): a mirror group's values are its original's, prompt for prompt.
   */
  swapSymmetric?: boolean;
}

/** How groups share prompts: units shared with another group, and which groups are whole mirrors. */
export interface GroupSharing {
  /** [index in group, index in other] of the prompts the two share. */
  shared(group: string, other: string): SharedUnits;
  /** The group whose every prompt this one's texts swap (and no more), if any. */
  mirrorOf(group: string): string | undefined;
}

const NO_SHARING: GroupSharing = { shared: () => [], mirrorOf: () => undefined };

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
  opts: { alpha: number; resamples: number; seed: number; sharing?: GroupSharing },
): { items: Comparison[]; mirrored: MirroredMetric[] } {
  const sharing = opts.sharing ?? NO_SHARING;
  const mirrored: MirroredMetric[] = [];
  const tests: { metric: MetricSamples; mi: number; gi: number; group: string; values: number[] }[] = [];
  metrics.forEach((m, mi) => {
    const base = m.byGroup.get(focus);
    if (!base) throw new Error(`metric ${m.metric} has no values for the focus group ${focus}`);
    let gi = 0;
    for (const [group, values] of m.byGroup) {
      gi++;
      if (group === focus) continue;
      const of = sharing.mirrorOf(group);
      if (m.swapSymmetric && of !== undefined && m.byGroup.has(of)) {
        mirrored.push({ metric: m.metric, group, mirrorOf: of, diff: mean(values) - mean(base) });
        continue;
      }
      tests.push({ metric: m, mi, gi, group, values });
    }
  });
  const resamples = resamplesForFamily(tests.length, opts.alpha, opts.resamples);
  const raw = tests.map(({ metric, mi, gi, group, values }): Omit<Comparison, "pHolm" | "significant"> => {
    const shared = sharing.shared(group, focus);
    const t = bootstrapDifference(values, metric.byGroup.get(focus)!, {
      resamples,
      level: 1 - opts.alpha,
      seed: opts.seed + 1000 * mi + gi,
      shared,
    });
    return {
      metric: metric.metric,
      group,
      against: focus,
      diff: t.diff,
      ciLow: t.ciLow,
      ciHigh: t.ciHigh,
      p: t.p,
      ...(shared.length ? { paired: shared.length } : {}),
    };
  });
  const adjusted = holmAdjust(raw.map((c) => c.p));
  return {
    items: raw.map((c, i) => ({ ...c, pHolm: adjusted[i], significant: adjusted[i] < opts.alpha })),
    mirrored,
  };
}
