import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  bootstrapDifference,
  holmAdjust,
  mean,
  quantileSorted,
  sd,
  standardError,
  summarize,
} from "../../src/analysis/stats.ts";
import { compareWithFocus } from "../../src/studies/compare.ts";
import { mulberry32, randn } from "../../src/util/random.ts";

function normalSample(rand: () => number, n: number, mu = 0, sigma = 1): number[] {
  return Array.from({ length: n }, () => mu + sigma * randn(rand));
}

describe("mulberry32", () => {
  it("is reproducible from its seed and differs between seeds", () => {
    const a = mulberry32(42);
    const b = mulberry32(42);
    const c = mulberry32(43);
    const xs = Array.from({ length: 5 }, () => a());
    assert.deepEqual(
      xs,
      Array.from({ length: 5 }, () => b()),
    );
    assert.notDeepEqual(
      xs,
      Array.from({ length: 5 }, () => c()),
    );
  });

  it("is roughly uniform on [0, 1)", () => {
    const r = mulberry32(7);
    const n = 20000;
    const bins = new Array(10).fill(0);
    let s = 0;
    for (let i = 0; i < n; i++) {
      const x = r();
      assert.ok(x >= 0 && x < 1);
      bins[Math.floor(x * 10)]++;
      s += x;
    }
    assert.ok(Math.abs(s / n - 0.5) < 0.01);
    // Each bin expects 2000 with sd ~42; 5 sd is a generous bound.
    for (const b of bins) assert.ok(Math.abs(b - 2000) < 210, `bin count ${b}`);
  });
});

describe("mean / sd / standard error", () => {
  it("match closed forms for 1..n", () => {
    const n = 101;
    const xs = Array.from({ length: n }, (_, i) => i + 1);
    assert.equal(mean(xs), (n + 1) / 2);
    // Sample variance of 1..n is n(n+1)/12.
    assert.ok(Math.abs(sd(xs) - Math.sqrt((n * (n + 1)) / 12)) < 1e-9);
    assert.ok(Math.abs(standardError(xs) - Math.sqrt((n * (n + 1)) / 12) / Math.sqrt(n)) < 1e-9);
  });

  it("sd of one value is 0 and empty or non-finite samples are refused", () => {
    assert.equal(sd([3]), 0);
    assert.throws(() => mean([]), /empty/);
    assert.throws(() => mean([1, Number.NaN]), /finite/);
  });

  it("quantiles interpolate like numpy's default", () => {
    const s = [1, 2, 3, 4];
    assert.equal(quantileSorted(s, 0), 1);
    assert.equal(quantileSorted(s, 1), 4);
    assert.equal(quantileSorted(s, 0.5), 2.5);
    assert.ok(Math.abs(quantileSorted(s, 0.25) - 1.75) < 1e-12);
  });
});

describe("bootstrap confidence interval of a mean", () => {
  it("is reproducible from the seed and brackets the sample mean", () => {
    const xs = normalSample(mulberry32(1), 40, 3, 2);
    const a = summarize(xs, { seed: 5, resamples: 500 });
    const b = summarize(xs, { seed: 5, resamples: 500 });
    assert.deepEqual(a, b);
    assert.ok(a.ciLow < a.mean && a.mean < a.ciHigh);
    // For a mean, the 95% percentile interval has half-width close to 1.96 standard errors.
    const half = (a.ciHigh - a.ciLow) / 2;
    assert.ok(Math.abs(half / (1.96 * a.se) - 1) < 0.2, `half-width ${half} vs 1.96 se ${1.96 * a.se}`);
  });

  it("resamples draw every element, the last included, uniformly", () => {
    // A one-hot sample at index j: a resample's mean is (times j was drawn) / n, Binomial(n, 1/n) / n
    // whatever j is. With n = 2 that is 0, 1/2, 1 with probabilities 1/4, 1/2, 1/4, so the 80% interval
    // is exactly [0, 1] for both indices; a resampler that never (or always) draws some index gives [0, 0]
    // (or [1, 1]) there.
    for (const j of [0, 1]) {
      const xs = [0, 0];
      xs[j] = 1;
      const s = summarize(xs, { seed: 11, resamples: 2000, level: 0.8 });
      assert.deepEqual([s.ciLow, s.ciHigh], [0, 1], `one-hot at ${j}`);
      // The middle 40% is the 1/2 atom (its cumulative mass runs from 1/4 to 3/4).
      const mid = summarize(xs, { seed: 11, resamples: 2000, level: 0.4 });
      assert.deepEqual([mid.ciLow, mid.ciHigh], [0.5, 0.5], `one-hot at ${j}, middle`);
    }
    // For larger n, each index's one-hot sample has the same interval: P(drawn >= 3 times of 5) = 0.058.
    const n = 5;
    for (let j = 0; j < n; j++) {
      const xs = new Array(n).fill(0);
      xs[j] = 1;
      const s = summarize(xs, { seed: 4, resamples: 4000, level: 0.8 });
      assert.deepEqual([s.ciLow, s.ciHigh], [0, 0.4], `n = 5, one-hot at ${j}`);
    }
  });

  it("covers the true mean at roughly the nominal rate", () => {
    const rand = mulberry32(2024);
    const trials = 300;
    let covered = 0;
    for (let t = 0; t < trials; t++) {
      const xs = normalSample(rand, 30, 1.5, 1);
      const s = summarize(xs, { seed: t, resamples: 400 });
      if (s.ciLow <= 1.5 && 1.5 <= s.ciHigh) covered++;
    }
    const rate = covered / trials;
    // Nominal 0.95; percentile bootstrap at n=30 runs slightly low. Binomial sd at 300 trials is ~0.013.
    assert.ok(rate > 0.89 && rate < 0.99, `coverage ${rate}`);
  });
});

describe("bootstrap test of a difference of means", () => {
  it("estimates the difference and finds a large shift significant", () => {
    const rand = mulberry32(3);
    const a = normalSample(rand, 25, 2, 1);
    const b = normalSample(rand, 25, 0, 1);
    const t = bootstrapDifference(a, b, { seed: 1, resamples: 1000 });
    assert.ok(Math.abs(t.diff - (mean(a) - mean(b))) < 1e-12);
    assert.ok(t.ciLow > 0, "a 2-sd shift with n=25 must exclude 0");
    assert.ok(t.p < 0.01);
    // Swapping the groups negates the difference.
    const u = bootstrapDifference(b, a, { seed: 1, resamples: 1000 });
    assert.ok(Math.abs(u.diff + t.diff) < 1e-12);
  });

  it("rejects at roughly the nominal rate when the groups are alike, and agrees with its interval", () => {
    const rand = mulberry32(99);
    const trials = 200;
    let rejected = 0;
    for (let t = 0; t < trials; t++) {
      const a = normalSample(rand, 20);
      const b = normalSample(rand, 20);
      const d = bootstrapDifference(a, b, { seed: t, resamples: 400 });
      if (d.p < 0.05) rejected++;
      // The interval excludes 0 exactly when the uncorrected two-sided tail mass is below 5%;
      // the +1 correction can only raise p, so exclusion must imply p <= ~0.05.
      if (d.ciLow > 0 || d.ciHigh < 0) assert.ok(d.p <= 0.06, `interval excludes 0 but p=${d.p}`);
      assert.ok(d.p > 0 && d.p <= 1);
    }
    const rate = rejected / trials;
    assert.ok(rate < 0.12, `false-positive rate ${rate}`);
  });

  it("resamples shared units as pairs: a constant shift on the same units is found exactly", () => {
    const rand = mulberry32(5);
    const b = normalSample(rand, 24, 0, 3);
    const a = b.map((x) => x + 0.2); // the same 24 units, each moved by 0.2
    const shared = b.map((_, i) => [i, i] as const);
    const paired = bootstrapDifference(a, b, { seed: 2, resamples: 500, shared });
    // Every resample draws each unit's two values together: the difference is 0.2 in all of them.
    assert.ok(Math.abs(paired.ciLow - 0.2) < 1e-9 && Math.abs(paired.ciHigh - 0.2) < 1e-9);
    assert.ok(paired.p < 0.01);
    // Treated as independent, the units' spread (sd 3) hides the shift.
    const independent = bootstrapDifference(a, b, { seed: 2, resamples: 500 });
    assert.ok(independent.ciLow < 0 && independent.ciHigh > 0.4);
    // Float64 reference for a partly shared design: units 0..9 shared, the rest independent.
    const part = bootstrapDifference(a.slice(0, 16), b.slice(0, 20), {
      seed: 4,
      resamples: 4000,
      shared: shared.slice(0, 10),
    });
    assert.ok(Math.abs(part.diff - (mean(a.slice(0, 16)) - mean(b.slice(0, 20)))) < 1e-12);
    assert.throws(
      () =>
        bootstrapDifference(a, b, {
          shared: [
            [0, 0],
            [0, 1],
          ],
        }),
      /shared twice/,
    );
  });
});

describe("Holm adjustment", () => {
  it("matches a hand-computed example", () => {
    // Sorted: 0.005*4=0.02, 0.01*3=0.03, 0.03*2=0.06, max(0.06, 0.04*1)=0.06.
    const adj = holmAdjust([0.01, 0.04, 0.03, 0.005]);
    const want = [0.03, 0.06, 0.06, 0.02];
    for (const [i, p] of adj.entries()) assert.ok(Math.abs(p - want[i]) < 1e-12, `${p} vs ${want[i]}`);
  });

  it("rejects the same hypotheses as the step-down procedure, for random p-values", () => {
    const rand = mulberry32(11);
    for (let trial = 0; trial < 200; trial++) {
      const m = 1 + Math.floor(rand() * 8);
      const ps = Array.from({ length: m }, () => rand() ** 3);
      const alpha = 0.05;
      const adj = holmAdjust(ps);
      // Step-down: walk p ascending, reject while p_(k) < alpha / (m - k), stop at the first failure.
      const order = ps.map((p, i) => [p, i] as const).sort((x, y) => x[0] - y[0]);
      const rejected = new Set<number>();
      for (let k = 0; k < m; k++) {
        if (order[k][0] < alpha / (m - k)) rejected.add(order[k][1]);
        else break;
      }
      for (let i = 0; i < m; i++) {
        assert.equal(adj[i] < alpha, rejected.has(i), `trial ${trial} p=${ps}`);
        assert.ok(adj[i] >= ps[i] && adj[i] <= 1);
      }
    }
  });
});

describe("comparisons with mirror groups", () => {
  it("keeps a whole mirror's swap-symmetric metric out of the Holm family and pairs shared prompts", () => {
    const rand = mulberry32(8);
    const focus = normalSample(rand, 12, 5, 1);
    const other = normalSample(rand, 12, 3, 1);
    const byGroup = new Map([
      ["focus", focus],
      ["mirror", focus.map((x) => x)], // the same prompts swapped: equal by construction
      ["other", other],
    ]);
    const sharing = {
      shared: (g: string, o: string) =>
        g === "mirror" && o === "focus" ? focus.map((_, i) => [i, i] as const) : [],
      mirrorOf: (g: string) => (g === "mirror" ? "focus" : undefined),
    };
    const clean = new Map(
      [...byGroup].map(([k, v]) => [k, v.map((x, i) => x + (k === "mirror" ? -i * 0.1 : 0))]),
    );
    const { items, mirrored } = compareWithFocus(
      [
        { metric: "gap", byGroup, swapSymmetric: true },
        { metric: "clean", byGroup: clean },
      ],
      "focus",
      { alpha: 0.05, resamples: 200, seed: 1, sharing },
    );
    assert.deepEqual(
      mirrored.map((m) => [m.metric, m.group, m.mirrorOf, m.diff]),
      [["gap", "mirror", "focus", 0]],
    );
    // The family: gap|other, clean|mirror, clean|other; the mirror's clean metric is tested, paired.
    assert.deepEqual(
      items.map((c) => `${c.metric}|${c.group}`),
      ["gap|other", "clean|mirror", "clean|other"],
    );
    assert.equal(items.find((c) => c.group === "mirror")!.paired, 12);
    assert.deepEqual(
      items.map((c) => c.pHolm),
      holmAdjust(items.map((c) => c.p)),
    );
  });
});
