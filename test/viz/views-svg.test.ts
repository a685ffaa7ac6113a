import assert from "node:assert/strict";
import { test } from "node:test";
import { makeColorScale } from "../../src/viz/color-scale.ts";
import { attentionView, displayToken, figureToSvg, svgToPng, tokenView } from "../../src/viz/index.ts";
import { findAll, hasClass, parseSvg } from "./svg-tree.ts";

const TOKENS = ["<|endoftext|>", " <script>", " &amp;", " the", "\n", " the", '"'];

/** Causal softmax rows from a deterministic score, so every row sums to 1 and src > dest is 0. */
function causalPattern(n: number, seed: number): number[][] {
  return Array.from({ length: n }, (_, d) => {
    const row = Array.from({ length: n }, (_, s) => (s <= d ? Math.exp(Math.sin(seed + d * 3 + s)) : 0));
    const z = row.reduce((a, b) => a + b, 0);
    return row.map((x) => x / z);
  });
}

test("attention SVG: n x n cells per head with their values, both axes labelled with every token", async () => {
  const n = TOKENS.length;
  const heads = [0, 1, 2].map((k) => ({ label: `L1H${k} <x>`, pattern: causalPattern(n, k) }));
  const svg = await figureToSvg(attentionView({ title: "attn & co", tokens: TOKENS, heads }));
  const root = parseSvg(svg);
  const grids = findAll(root, (el) => el.tag === "svg" && hasClass(el, "cs-attention-grid"));
  assert.equal(grids.length, 3);
  grids.forEach((grid, k) => {
    const cells = findAll(grid, (el) => hasClass(el, "cs-cell"));
    assert.equal(cells.length, n * n);
    for (const c of cells) {
      const [d, s] = [Number(c.attrs["data-dest"]), Number(c.attrs["data-src"])];
      assert.equal(Number(c.attrs["data-value"]), heads[k].pattern[d][s]);
    }
    const labels = findAll(grid, (el) => hasClass(el, "cs-label"));
    assert.equal(labels.length, 2 * n);
    for (const axis of ["dest", "src"]) {
      const texts = labels.filter((l) => l.attrs["data-axis"] === axis).map((l) => l.text);
      assert.deepEqual(
        texts,
        TOKENS.map((t, i) => `${i}: ${displayToken(t)}`),
      );
    }
    assert.ok(findAll(grid, (el) => el.tag === "text" && el.text === heads[k].label).length === 1);
  });
});

test("attention view rejects a pattern that is not tokens x tokens", () => {
  assert.throws(
    () => attentionView({ title: "t", tokens: ["a", "b"], heads: [{ label: "h", pattern: [[1]] }] }),
    /must be \[dest\]\[src\] = 2 x 2/,
  );
});

test("token SVG: one coloured box per token, coloured by value on a symmetric scale, text escaped", async () => {
  const samples = [
    { label: "s<1>", tokens: TOKENS, values: [0, -2, 1, 0.5, 0, 3, -0.25] },
    { tokens: ["a", " b"], values: [4, -4] },
  ];
  const svg = await figureToSvg(tokenView({ title: "n & m", samples, valueLabel: "act" }));
  const root = parseSvg(svg);
  const boxes = findAll(root, (el) => el.tag === "g" && hasClass(el, "cs-token"));
  assert.equal(boxes.length, TOKENS.length + 2);
  const scale = makeColorScale("diverging", [-4, 4]);
  for (const g of boxes) {
    const s = samples[Number(g.attrs["data-sample"])];
    const i = Number(g.attrs["data-index"]);
    const rect = g.children.find((c) => c.tag === "rect")!;
    const text = g.children.find((c) => c.tag === "text")!;
    assert.equal(rect.attrs.fill, scale.color(s.values[i]));
    assert.equal(text.text, displayToken(s.tokens[i]));
  }
  assert.ok(findAll(root, (el) => el.tag === "text" && el.text === "s<1>").length === 1);
  // The legend spans the symmetric domain.
  const legendTexts = findAll(root, (el) => el.tag === "g" && hasClass(el, "cs-legend")).flatMap((g) =>
    findAll(g, (el) => el.tag === "text").map((t) => t.text),
  );
  assert.deepEqual(legendTexts, ["act", "-4", "4", "0"]);
  assert.equal(svgToPng(svg, 1).readUInt32BE(16), Number(root.attrs.width));
});

test("token view rejects tokens/values of different lengths", () => {
  assert.throws(
    () => tokenView({ title: "t", samples: [{ tokens: ["a"], values: [1, 2] }], valueLabel: "v" }),
    /1 tokens but 2 values/,
  );
});
