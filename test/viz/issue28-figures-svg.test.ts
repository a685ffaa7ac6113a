/**
 * SVG-structure tests of the figure rules in issue 28: no repeated series style within a figure, sequential
 * colour for one-signed data and a neutral grey diverging middle, a log-x faithfulness curve marking where it
 * is not monotone around the chosen circuit, the residual axis named for its `_pre` ticks, a circuit
 * graph subtitle that fits, and signed numbers written with one sign.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { formatSigned } from "../../src/analysis/stats.ts";
import { formatComparison } from "../../src/patching/attribution-compare.ts";
import { circuitGraphSvg } from "../../src/viz/circuit-graph.ts";
import { figureToSvg, heatmap, lineChart, scatterChart } from "../../src/viz/index.ts";
import { RESID_AXIS } from "../../src/viz/presets/attribution-figures.ts";
import { dipsNear, faithfulnessCurve } from "../../src/viz/presets/circuit-figures.ts";
import { type El, findAll, parseSvg, vegaMarkItems, vegaTexts } from "./svg-tree.ts";

const rgb = (fill: string) => {
  const m = /^#([0-9a-f]{2})([0-9a-f]{2})([0-9a-f]{2})$/i.exec(fill);
  if (m) return m.slice(1).map((h) => Number.parseInt(h, 16));
  const n = /rgb\((\d+),\s*(\d+),\s*(\d+)\)/.exec(fill);
  assert.ok(n, `not a colour: ${fill}`);
  return n.slice(1).map(Number);
};

test("line chart: 13 series get 13 different (colour, dash) styles, legend included", async () => {
  const series = Array.from({ length: 13 }, (_, i) => ({ name: `group-${i}`, values: [i, i + 1, i / 2] }));
  const root = parseSvg(await figureToSvg(lineChart({ title: "13 groups", x: ["a", "b", "c"], series })));
  const lines = vegaMarkItems(root, "mark-line role-mark");
  const styles = new Set(lines.map((e) => `${e.attrs.stroke}|${e.attrs["stroke-dasharray"] ?? ""}`));
  assert.ok(lines.length >= 13, `${lines.length} line paths`);
  assert.equal(styles.size, 13, [...styles].join(" "));
  assert.equal(vegaTexts(root, "mark-text role-legend-label").length, 13);
  // More than the palette can tell apart is refused, not silently repeated.
  const tooMany = Array.from({ length: 71 }, (_, i) => ({ name: `g${i}`, values: [i] }));
  assert.throws(() => lineChart({ title: "t", x: ["a"], series: tooMany }), /facets/);
});

test("scatter: 12 groups get 12 different (colour, shape) styles", async () => {
  const points = Array.from({ length: 12 }, (_, i) => ({ x: i, y: i, label: `p${i}`, group: `g${i}` }));
  const root = parseSvg(await figureToSvg(scatterChart({ title: "s", points })));
  const marks = vegaMarkItems(root, "mark-symbol role-mark");
  const styles = new Set(marks.map((e) => `${e.attrs.fill}|${e.attrs.d}`));
  assert.equal(styles.size, 12);
});

test("heatmap: one-signed data on a sequential scale, mixed signs diverging with a neutral grey 0", async () => {
  const rows = ["L0"];
  const cols = ["a", "b", "c"];
  const seq = heatmap({ title: "scores", rowLabels: rows, colLabels: cols, values: [[0.0008, 0.4, 0.84]] });
  assert.equal((seq.data as { domain: number[] }).domain[0], 0);
  const seqCells = vegaMarkItems(parseSvg(await figureToSvg(seq)), "mark-rect role-mark layer_0_marks");
  // Sequential blues: the colour darkens monotonically with the value.
  const lum = seqCells.map((c) => rgb(c.attrs.fill).reduce((a, x) => a + x, 0));
  assert.ok(lum[0] > lum[1] && lum[1] > lum[2], JSON.stringify(lum));
  // No red anywhere on a one-signed scale.
  for (const c of seqCells) {
    const [r, , b] = rgb(c.attrs.fill);
    assert.ok(b >= r, c.attrs.fill);
  }
  const div = heatmap({ title: "patching", rowLabels: rows, colLabels: cols, values: [[-1, 0, 1]] });
  const cells = vegaMarkItems(parseSvg(await figureToSvg(div)), "mark-rect role-mark layer_0_marks");
  const [r, g, b] = rgb(cells[1].attrs.fill);
  assert.ok(r === g && g === b, `0 is drawn ${cells[1].attrs.fill}, not neutral grey`);
  const [r0, , b0] = rgb(cells[0].attrs.fill);
  const [r2, , b2] = rgb(cells[2].attrs.fill);
  assert.ok(r0 > b0 && b2 > r2, "red below 0, blue above");
});

test("faithfulness curve: log x axis, a rule at the chosen circuit and rings where it is not monotone", async () => {
  // Rises, dips at 40 edges (just after the chosen 32), rises again.
  const points = [1, 2, 4, 8, 16, 32, 40, 64, 128, 2461].map((edges, i) => ({
    edges,
    normalized: edges === 40 ? 0.45 : Math.min(1, 0.1 * (i + 1)),
    topN: edges,
    metric: 0,
  }));
  assert.deepEqual(
    dipsNear(points, 32).map((d) => d.edges),
    [40],
  );
  const fig = faithfulnessCurve({ faithfulness: points }, 32);
  const spec = JSON.stringify(fig.spec);
  assert.match(spec, /"scale":\{"type":"log"\}/);
  const root = parseSvg(await figureToSvg(fig));
  const texts = findAll(root, (e) => e.tag === "text").map((e) => e.text ?? "");
  assert.ok(
    texts.some((t) => t.includes("chosen: 32 edges")),
    "the chosen circuit is marked",
  );
  assert.ok(
    texts.some((t) => t.includes("not monotone")),
    "the dip is marked",
  );
  assert.ok(
    texts.some((t) => t.includes("log scale")),
    "the axis says it is a log scale",
  );
  // A monotone curve gets no ring.
  const mono = points.map((p) => ({ ...p, normalized: p.edges / 2461 }));
  assert.equal(dipsNear(mono, 32).length, 0);
});

test("the accumulated-residual axis names its _pre ticks (the stream entering each layer)", () => {
  assert.match(RESID_AXIS, /before layer L \(L_pre\)/);
  assert.doesNotMatch(RESID_AXIS, /^residual stream after$/);
});

test("signed numbers: one sign, a true minus ('−0.003', never '+ -0.003')", () => {
  assert.equal(formatSigned(-0.003, 3), "−0.003");
  assert.equal(formatSigned(0.78), "+0.78");
  assert.equal(formatSigned(-0.0001), "0.00");
  const text = formatComparison([
    {
      target: "resid_pre",
      correlation: 0.9,
      slope: 1.1,
      intercept: -0.003,
      n: 10,
      worst: [],
      estimate: [],
      exact: [],
    } as never,
  ]);
  assert.match(text, /exact − 0\.003/);
  assert.doesNotMatch(text, /\+ -/);
});

test("circuit graph: every subtitle line fits the narrowest graph (720 px at 11 px type)", () => {
  const svg = circuitGraphSvg({
    title: "Circuit of stories260k: 3 edges, faithfulness 0.812",
    nLayers: 2,
    scoreLabel: "EAP-IG with 5 steps (estimate of the change in the metric when the edge is removed)",
    edges: [
      { name: "input->a0.h1<q>", parent: "input", child: "a0.h1", score: 0.5 } as never,
      { name: "a0.h1->logits", parent: "a0.h1", child: "logits", score: -0.2 } as never,
    ],
  });
  const root = parseSvg(svg);
  const subs = findAll(root, (e) => e.tag === "text" && (e.attrs.class ?? "").includes("cs-subtitle"));
  assert.ok(subs.length >= 3);
  // About 6 px per character at 11 px: 110 characters reach the 720 px edge from x = 12.
  for (const s of subs) assert.ok(textOf(s).length <= 110, textOf(s));
});

function textOf(e: El): string {
  return e.text + e.children.map(textOf).join("");
}
