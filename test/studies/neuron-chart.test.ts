/**
 * The study's neuron chart (issue 28 point 4): the neurons chosen by the attribution estimate are drawn and
 * named by exact patching, the caption says so, the table shows exact beside the estimate with both
 * rankings, and an interval narrower than the printed digits never prints as "[0.00, 0.00]" or "± 0.00".
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { formatMeanCi, formatMeanSe } from "../../src/analysis/stats.ts";
import type { StudyResults } from "../../src/studies/results.ts";
import { neuronStage } from "../../src/studies/stages/components.ts";
import { summarizeSample } from "../../src/studies/summaries.ts";

// Ranked one way by the estimate (A, C, B, D) and another by exact patching (B, C, A, D).
const neurons = [
  { label: "L1N10", estimate: 0.3, exact: [0.02, 0.03, 0.025, 0.028, 0.022, 0.03] },
  { label: "L1N66", estimate: 0.1, exact: [0.16, 0.14, 0.15, 0.155, 0.145, 0.15] },
  { label: "L1N16", estimate: 0.2, exact: [-0.13, -0.15, -0.14, -0.135, -0.145, -0.14] },
  { label: "L0N3", estimate: 0.05, exact: [0.001, 0.0011, 0.0012, 0.0009, 0.001, 0.00105] },
];
const mean = (xs: number[]) => xs.reduce((s, x) => s + x, 0) / xs.length;

const res = {
  focusGroup: "noun-near-she",
  groups: [{ name: "noun-near-she", normalised: true }],
  focus: {
    neurons: {
      layers: [0, 1],
      top: neurons.map((n, k) => ({
        label: n.label,
        layer: Number(n.label[1]),
        neuron: Number(n.label.slice(3)),
        attribution: n.estimate,
        exact: summarizeSample(n.exact, { resamples: 400, seed: 7 + k }),
      })),
    },
  },
} as unknown as StudyResults;

const [section] = neuronStage.sections?.(res) ?? [];
const [{ figure, caption }] = section.figures;
const table = section.tables?.[0];

test("neuron chart: bars are the exact effects, sorted by |exact|, and the title says so", () => {
  const byExact = [...neurons].sort((a, b) => Math.abs(mean(b.exact)) - Math.abs(mean(a.exact)));
  assert.deepEqual(
    byExact.map((n) => n.label),
    ["L1N66", "L1N16", "L1N10", "L0N3"],
  );
  const data = (figure as { data: { labels: string[]; values: number[] } }).data;
  assert.deepEqual(
    data.labels,
    byExact.map((n) => n.label),
  );
  for (const [i, v] of data.values.entries())
    assert.ok(Math.abs(v - mean(byExact[i].exact)) < 1e-12, data.labels[i]);
  assert.match(figure.title, /by exact patching/);
});

test("neuron chart caption: the largest by exact patching, each with its estimate and its rank by the estimate", () => {
  assert.match(
    caption ?? "",
    /the \d+ with the largest estimates were patched exactly .* sorted here by the exact effect/,
  );
  const largest = /Largest by exact patching: (.*); every neuron's/.exec(caption ?? "")?.[1] ?? "";
  const named = [...largest.matchAll(/(L\d+N\d+) [^(]*\(estimate (-?\d\.\d+), rank (\d) by estimate\)/g)];
  assert.deepEqual(
    named.map((m) => [m[1], Number(m[2]), Number(m[3])]),
    [
      ["L1N66", 0.1, 3],
      ["L1N16", 0.2, 2],
      ["L1N10", 0.3, 1],
    ],
  );
});

test("neuron table: exact beside the estimate, ranked both ways", () => {
  assert.ok(table);
  assert.deepEqual(table.columns, [
    "neuron",
    "exact [95% interval]",
    "estimate",
    "rank by |exact|",
    "rank by |estimate|",
  ]);
  const rows = table.rows.map((r) => r.map(String));
  assert.deepEqual(
    rows.map((r) => [r[0], Number(r[1].split(" ")[0]), Number(r[2]), r[3], r[4]]),
    [
      ["L1N66", Number(mean(neurons[1].exact).toFixed(2)), 0.1, "1", "3"],
      ["L1N16", Number(mean(neurons[2].exact).toFixed(2)), 0.2, "2", "2"],
      ["L1N10", Number(mean(neurons[0].exact).toFixed(2)), 0.3, "3", "1"],
      ["L0N3", Number(mean(neurons[3].exact).toFixed(5)), 0.05, "4", "4"],
    ],
  );
});

test("an interval or SE that rounds to 0 at two decimals prints with the digits it needs, or says n=1", () => {
  const text = [caption, ...(table?.rows.flat() ?? [])].join("\n");
  assert.doesNotMatch(text, /\[0\.00, 0\.00\]|± 0\.00\b/);
  // L0N3's interval (width about 0.0002) shows its two ends apart.
  const row = table?.rows.find((r) => r[0] === "L0N3")?.map(String) ?? [];
  const [, lo, hi] = /\[(-?[\d.]+), (-?[\d.]+)\]/.exec(row[1]) ?? [];
  assert.ok(Number(hi) > Number(lo), row[1]);
  assert.ok(Number(lo) > 0.0008 && Number(hi) < 0.0013, row[1]);
  assert.equal(formatMeanSe({ mean: 0.00123, se: 0.0004 }), "0.00123 ± 0.00040");
  assert.equal(formatMeanSe({ mean: 1.5, se: 0.1234 }), "1.50 ± 0.12");
  assert.equal(formatMeanSe({ mean: 1.5, se: 0, n: 1 }), "1.50 (n=1: no interval)");
  assert.equal(formatMeanCi({ mean: 0.5, ciLow: 0.4996, ciHigh: 0.5004 }), "0.50000 [0.49960, 0.50040]");
  assert.equal(formatMeanCi({ mean: 2, ciLow: 2, ciHigh: 2, n: 1 }), "2.00 (n=1: no interval)");
  assert.equal(formatMeanCi({ mean: 2, ciLow: 2, ciHigh: 2, n: 5 }), "2.00 (every value equal: no spread)");
});
