/**
 * Labels users name (study groups, series, panels) may be any string, including the names of Object.prototype's
 * members: Vega's runtime rejects a sort array holding "constructor", "toString" or "hasOwnProperty" (issue 27,
 * point 11), so the charts order by their scales' domains or by a field. Each chart kind is drawn with such names
 * and must keep them, in the order given.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { barChart } from "../../src/viz/charts/bar-chart.ts";
import { heatmap, heatmapPanels } from "../../src/viz/charts/heatmap.ts";
import { lineChart } from "../../src/viz/charts/line-chart.ts";
import { scatterChart } from "../../src/viz/charts/scatter-chart.ts";
import { figureToSvg } from "../../src/viz/export/figure-to-svg.ts";

const NAMES = ["constructor", "toString", "__proto__", "hasOwnProperty", "valueOf"];

/** Where each name first appears in the SVG's text, in the order given: each found, strictly increasing. */
function inOrder(svg: string, names: readonly string[]): void {
  const at = names.map((n) => svg.indexOf(`>${n}<`));
  for (const [i, n] of names.entries()) assert.ok(at[i] >= 0, `"${n}" is drawn`);
  for (let i = 1; i < at.length; i++) assert.ok(at[i - 1] < at[i], `"${names[i - 1]}" before "${names[i]}"`);
}

test("line chart: series named after Object.prototype's members are drawn, in order", async () => {
  const svg = await figureToSvg(
    lineChart({ title: "l", x: [1, 2], series: NAMES.map((name, i) => ({ name, values: [i, i + 1] })) }),
  );
  inOrder(svg, NAMES);
});

test("bar chart and ordinal line x: such labels on a band axis, in order", async () => {
  inOrder(
    await figureToSvg(barChart({ title: "b", labels: NAMES, values: NAMES.map((_, i) => i - 2) })),
    NAMES,
  );
  inOrder(
    await figureToSvg(lineChart({ title: "l", x: NAMES, series: [{ name: "s", values: [1, 2, 3, 4, 5] }] })),
    NAMES,
  );
});

test("scatter chart: groups named after Object.prototype's members", async () => {
  const svg = await figureToSvg(
    scatterChart({
      title: "s",
      points: NAMES.map((group, i) => ({ x: i, y: i, group, label: group })),
    }),
  );
  inOrder(svg, NAMES);
});

test("heatmaps: rows, columns and panels named after Object.prototype's members", async () => {
  const values = NAMES.map((_, i) => NAMES.map((_, j) => i - j));
  inOrder(
    await figureToSvg(
      heatmap({ title: "h", rowLabels: NAMES, colLabels: ["a"], values: values.map((r) => [r[0]]) }),
    ),
    NAMES,
  );
  // Panels: the figure must build and draw (Vega leaves facet headers of these names blank; the cells are drawn).
  const svg = await figureToSvg(
    heatmapPanels({
      title: "p",
      rowLabels: ["r"],
      colLabels: ["c"],
      panels: NAMES.map((title, k) => ({ title, values: [[k]] })),
    }),
  );
  assert.ok(svg.includes("<svg"));
});
