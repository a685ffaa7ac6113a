import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { compile } from "vega-lite";
import {
  barChart,
  figureToSvg,
  heatmap,
  lineChart,
  scatterChart,
  svgToPng,
  tokenPositionLabels,
  writeFigureFiles,
} from "../../src/viz/index.ts";
import { parseSvg, vegaMarkItems, vegaTexts } from "./svg-tree.ts";

const TOKENS = ["<|endoftext|>", "When", " the", " <b>", " &", " the", '"q"'];

function patchValues(rows: number, cols: number): (number | null)[][] {
  return Array.from({ length: rows }, (_, r) =>
    Array.from({ length: cols }, (_, c) => Math.sin(r * 7 + c) * (r + 1)),
  );
}

test("heatmap: symmetric diverging domain centred on 0, duplicate tokens stay distinct columns", () => {
  const values = patchValues(3, TOKENS.length);
  values[1][2] = null;
  const fig = heatmap({
    title: "t",
    rowLabels: ["L0", "L1", "L2"],
    colLabels: tokenPositionLabels(TOKENS),
    values,
  });
  const enc = (
    fig.spec as {
      layer: { encoding: Record<string, { scale?: { domain?: unknown; range?: string[] } }> }[];
    }
  ).layer[0].encoding;
  const maxAbs = Math.max(...values.flat().map((v) => Math.abs(v ?? 0)));
  // Piecewise through 0, whose colour is a neutral grey (r = g = b).
  assert.deepEqual(enc.color.scale?.domain, [-maxAbs, 0, maxAbs]);
  const mid = enc.color.scale!.range![1];
  assert.ok(mid[1] + mid[2] === mid[3] + mid[4] && mid[3] + mid[4] === mid[5] + mid[6], mid);
  assert.deepEqual(enc.x.scale?.domain, tokenPositionLabels(TOKENS));
  const rows = (fig.spec as { data: { values: { value: number | null }[] } }).data.values;
  assert.equal(
    rows.filter((r) => r.value !== null).length,
    3 * TOKENS.length - 1,
    "null cell is not on the scale",
  );
});

test("every chart kind compiles with no Vega-Lite warnings", () => {
  const figs = [
    heatmap({
      title: "h",
      rowLabels: ["a"],
      colLabels: tokenPositionLabels(TOKENS),
      values: patchValues(1, TOKENS.length),
    }),
    heatmap({ title: "h", rowLabels: ["a"], colLabels: ["x"], values: [[0.3]], scale: "sequential" }),
    lineChart({
      title: "l",
      x: [1, 2],
      series: [{ name: "s", values: [1, 2], lower: [0, 1], upper: [2, 3] }],
    }),
    barChart({
      title: "b",
      labels: ["x", "y"],
      values: [1, -1],
      errors: { lower: [0, -2], upper: [2, 0] },
      horizontal: true,
    }),
    scatterChart({ title: "s", points: [{ x: 1, y: 2, label: "p", group: "g" }], identityLine: true }),
  ];
  for (const fig of figs) {
    const warnings: string[] = [];
    const logger = {
      level: () => logger,
      info: () => logger,
      debug: () => logger,
      warn: (...args: unknown[]) => {
        warnings.push(args.join(" "));
        return logger;
      },
      error: (...args: unknown[]) => {
        throw new Error(args.join(" "));
      },
    };
    compile(fig.spec, { logger: logger as never });
    assert.deepEqual(warnings, [], `${fig.kind} "${fig.title}"`);
  }
});

test('heatmap SVG: one rect per non-null cell, every token label on the axis, valid XML despite < & "', async () => {
  const values = patchValues(4, TOKENS.length);
  values[0][0] = null;
  const labels = tokenPositionLabels(TOKENS);
  const svg = await figureToSvg(
    heatmap({
      title: "patch <resid_pre> & more",
      rowLabels: ["L0", "L1", "L2", "L3"],
      colLabels: labels,
      values,
    }),
  );
  const root = parseSvg(svg);
  assert.equal(vegaMarkItems(root, "mark-rect role-mark layer_0_marks").length, 4 * TOKENS.length - 1);
  const axisLabels = vegaTexts(root, "mark-text role-axis-label");
  for (const l of labels) assert.ok(axisLabels.includes(l), `axis shows ${l}`);
  for (const l of ["L0", "L1", "L2", "L3"]) assert.ok(axisLabels.includes(l));
  assert.deepEqual(vegaTexts(root, "mark-text role-title-text"), ["patch <resid_pre> & more"]);
});

test("line chart: x labels kept in the given order, one point per value, one band per banded series", async () => {
  const x = ["embed", "L0", "L1", "L10", "L2"];
  const a = [0, 1, 2, 3, 4];
  const fig = lineChart({
    title: "ld",
    x,
    series: [
      { name: "clean", values: a, lower: a.map((v) => v - 1), upper: a.map((v) => v + 1) },
      { name: "corrupt", values: a.map((v) => -v) },
    ],
  });
  const root = parseSvg(await figureToSvg(fig));
  assert.deepEqual(vegaTexts(root, "mark-text role-axis-label").slice(0, x.length), x);
  assert.equal(vegaMarkItems(root, "mark-symbol role-mark").length, 2 * x.length);
  assert.equal(vegaMarkItems(root, "mark-line role-mark").length, 2);
  assert.equal(vegaMarkItems(root, "mark-area role-mark").length, 1);
  assert.deepEqual(vegaTexts(root, "mark-text role-legend-label").sort(), ["clean", "corrupt"]);
});

test("line chart legend lists every series, even past Vega's default limit of 50 (36+ study groups)", async () => {
  const series = Array.from({ length: 60 }, (_, i) => ({ name: `g${i}`, values: [i, i + 1] }));
  const root = parseSvg(await figureToSvg(lineChart({ title: "many", x: ["a", "b"], series })));
  assert.equal(vegaTexts(root, "mark-text role-legend-label").length, 60);
});

test("bar chart: one bar per label and one error rule per bar", async () => {
  const labels = ["L9H6", "L9H9", "L10H7", "L9H6"];
  const root = parseSvg(
    await figureToSvg(
      barChart({ title: "b", labels, values: [1.5, 1.2, -0.8, 0.1], errors: [0.1, 0.2, 0.1, 0.05] }),
    ),
  );
  assert.equal(vegaMarkItems(root, "mark-rect role-mark").length, 4);
  assert.equal(vegaMarkItems(root, "mark-rule role-mark").length, 4);
  const axis = vegaTexts(root, "mark-text role-axis-label");
  for (const l of ["0: L9H6", "1: L9H9", "2: L10H7", "3: L9H6"]) assert.ok(axis.includes(l), l);
});

test("scatter: one symbol per point plus the y = x rule", async () => {
  const points = Array.from({ length: 9 }, (_, i) => ({ x: i - 4, y: (i - 4) * 0.9, label: `L0H${i}` }));
  const root = parseSvg(await figureToSvg(scatterChart({ title: "s", points, identityLine: true })));
  assert.equal(vegaMarkItems(root, "mark-symbol role-mark").length, 9);
  assert.equal(vegaMarkItems(root, "mark-rule role-mark").length, 1);
});

test("chart builders reject mismatched or non-finite input with a message naming the fix", () => {
  assert.throws(
    () => heatmap({ title: "t", rowLabels: ["a"], colLabels: ["x", "y"], values: [[1]] }),
    /values\[0\] has 1 columns but colLabels has 2/,
  );
  assert.throws(
    () => heatmap({ title: "t", rowLabels: ["a"], colLabels: ["x"], values: [[Number.NaN]] }),
    /use null/,
  );
  assert.throws(
    () => lineChart({ title: "t", x: ["a", "b"], series: [{ name: "s", values: [1] }] }),
    /one .* per x/,
  );
  assert.throws(() => barChart({ title: "t", labels: [], values: [] }), /labels is empty/);
  assert.throws(
    () => lineChart({ title: "t", x: [1], series: [{ name: "s", values: [1], lower: [0] }] }),
    /only one of lower\/upper/,
  );
});

test("svgToPng rasterises at the requested scale; writeFigureFiles writes the SVG and PNG", async () => {
  const fig = heatmap({
    title: "t",
    rowLabels: ["a", "b"],
    colLabels: ["x", "y"],
    values: [
      [1, -1],
      [0, 2],
    ],
  });
  const svg = await figureToSvg(fig);
  const root = parseSvg(svg);
  const [w, h] = [Number(root.attrs.width), Number(root.attrs.height)];
  const png = svgToPng(svg, 2);
  assert.deepEqual([...png.subarray(1, 4)].map((c) => String.fromCharCode(c)).join(""), "PNG");
  assert.equal(png.readUInt32BE(16), Math.round(w * 2));
  assert.equal(png.readUInt32BE(20), Math.round(h * 2));
  const dir = mkdtempSync(join(tmpdir(), "cs-viz-"));
  try {
    const written = await writeFigureFiles(dir, "heads", fig, { png: true });
    assert.deepEqual(written, [join(dir, "heads.svg"), join(dir, "heads.png")]);
    assert.equal(readFileSync(written[0], "utf8"), svg);
    assert.ok(readFileSync(written[1]).subarray(1, 4).equals(Buffer.from("PNG")));
    await assert.rejects(writeFigureFiles(dir, "../x", fig), /plain file name/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
