/**
 * SVG-structure tests of the figure rules in issue #17: "not computed" is not zero, panels of one quantity
 * share one colour domain, legend swatches are the line colour, exports do not cut labels.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { figureToSvg, heatmap, heatmapPanels, lineChart, tokenView } from "../../src/viz/index.ts";
import { findAll, hasClass, parseSvg, vegaMarkItems, vegaTexts } from "./svg-tree.ts";

const ROWS = ["L0", "L1", "L2"];
const COLS = ["H0", "H1", "H2", "H3"];
const grid = (k: number) => ROWS.map((_, r) => COLS.map((_, c) => Math.sin(1 + r * 4 + c) * k));

test("heatmap: a not-computed cell is drawn grey with a 'not computed' legend entry, never as 0 (white)", async () => {
  const values: (number | null)[][] = grid(1);
  values[1][2] = null;
  values[2][0] = 0; // a real zero, for contrast
  const root = parseSvg(await figureToSvg(heatmap({ title: "t", rowLabels: ROWS, colLabels: COLS, values })));
  const computed = vegaMarkItems(root, "mark-rect role-mark layer_0_marks");
  const missing = vegaMarkItems(root, "mark-rect role-mark layer_1_marks");
  assert.equal(computed.length, ROWS.length * COLS.length - 1);
  assert.equal(missing.length, 1, "one not-computed cell");
  const zeroFill = computed[2 * COLS.length - 1].attrs.fill; // L2 H0 is the 2*4-1'th computed cell
  assert.notEqual(missing[0].attrs.fill, zeroFill, "not computed must not look like 0");
  assert.equal(missing[0].attrs.fill, "#9e9e9e");
  assert.ok(vegaTexts(root, "mark-text role-legend-label").includes("not computed"));
  const swatch = vegaMarkItems(root, "mark-symbol role-legend-symbol");
  assert.equal(swatch[0]?.attrs.fill, "#9e9e9e", "the legend swatch has the not-computed fill");
});

test("heatmapPanels: every panel is drawn on ONE colour domain, with one legend", async () => {
  // Panel 2 is 10x panel 1: on per-panel scales both would span the full colour range.
  const fig = heatmapPanels({
    title: "head_all",
    rowLabels: ROWS,
    colLabels: COLS,
    valueTitle: "fraction restored",
    panels: [
      { title: "z", values: grid(0.1) },
      { title: "q", values: grid(1) },
    ],
  });
  const root = parseSvg(await figureToSvg(fig));
  assert.equal(vegaTexts(root, "mark-text role-legend-title").length, 1, "one legend");
  const fills = (panel: number) =>
    findAll(root, (el) => el.tag === "g" && hasClass(el, "child_layer_0_marks"))[panel].children.map(
      (c) => c.attrs.fill,
    );
  const [z, q] = [fills(0), fills(1)];
  assert.equal(z.length, 12);
  // The same value gets the same colour in both panels: z's cells are all near white, q's are not.
  // Distance from white of the most saturated cell ("#rrggbb" or "rgb(r, g, b)").
  const channels = (f: string) =>
    f.startsWith("#")
      ? [1, 3, 5].map((i) => Number.parseInt(f.slice(i, i + 2), 16))
      : (f.match(/\d+/g) ?? []).map(Number);
  const strongest = (fs: string[]) =>
    Math.max(...fs.map((f) => 765 - channels(f).reduce((a, c) => a + c, 0)));
  assert.ok(strongest(z) < strongest(q) / 4, `z panel ${strongest(z)} vs q panel ${strongest(q)}`);
  const domain = (fig.data as { domain: number[] }).domain;
  const maxAbs = Math.max(...grid(1).flat().map(Math.abs));
  assert.deepEqual(domain, [-maxAbs, maxAbs]);
});

test("line chart: legend swatches are the line colour, not the pale band", async () => {
  const v = [0, 1, 3];
  const fig = lineChart({
    title: "bands",
    x: ["a", "b", "c"],
    series: [
      { name: "clean (contraction)", values: v, lower: v.map((x) => x - 1), upper: v.map((x) => x + 1) },
      {
        name: "corrupted",
        values: v.map((x) => -x),
        lower: v.map((x) => -x - 1),
        upper: v.map((x) => 1 - x),
      },
    ],
  });
  const root = parseSvg(await figureToSvg(fig));
  const lines = vegaMarkItems(root, "mark-line role-mark");
  const symbols = vegaMarkItems(root, "mark-symbol role-legend-symbol");
  assert.equal(symbols.length, 2);
  symbols.forEach((sym, k) => {
    assert.equal(sym.attrs.stroke, lines[k].attrs.stroke, `swatch ${k} is the line's colour`);
    assert.notEqual(sym.attrs.opacity, "0.18");
  });
});

test("SVG export never cuts a legend label or title with an ellipsis", async () => {
  const long = "L0 mlp patching (fraction restored, contraction group 're/they)";
  const fig = lineChart({
    title: long,
    x: [1, 2],
    series: [{ name: `clean (contraction) ${long}`, values: [1, 2] }],
  });
  const svg = await figureToSvg(fig);
  assert.ok(!svg.includes("…"), "no truncated text");
  const root = parseSvg(svg);
  assert.deepEqual(vegaTexts(root, "mark-text role-legend-label"), [`clean (contraction) ${long}`]);
});

test("token view SVG is wide enough for a long title and legend label", async () => {
  const title = "Neuron L3 N1234: activation on a rather long example title that must fit";
  const svg = await figureToSvg(
    tokenView({ title, samples: [{ tokens: ["a", " b"], values: [1, 2] }], valueLabel: "activation" }),
  );
  const width = Number(/<svg[^>]* width="(\d+)"/.exec(svg)?.[1]);
  // 15px bold DejaVu Sans averages well over 0.55 em per character.
  assert.ok(width >= title.length * 15 * 0.55, `svg width ${width} for a ${title.length}-character title`);
});
