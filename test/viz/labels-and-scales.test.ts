import assert from "node:assert/strict";
import { test } from "node:test";
import { domainOf, formatValue, makeColorScale } from "../../src/viz/color-scale.ts";
import { displayToken, distinctLabels, tokenPositionLabels } from "../../src/viz/token-labels.ts";

test("displayToken makes spaces, newlines and tabs visible, and keeps other characters", () => {
  assert.equal(displayToken(" the"), "·the");
  assert.equal(displayToken("  x\n"), "··x↵");
  assert.equal(displayToken("\r\n\t<&>"), "↵⇥<&>");
  assert.equal(displayToken(""), "∅");
});

test("distinctLabels prefixes every index only when labels repeat", () => {
  assert.deepEqual(distinctLabels(["H0", "H1"]), ["H0", "H1"]);
  const d = distinctLabels(["·the", "x", "·the"]);
  assert.deepEqual(d, ["0: ·the", "1: x", "2: ·the"]);
  assert.equal(new Set(tokenPositionLabels([" the", " the", "a"])).size, 3);
});

test("diverging colour scale is neutral grey at 0, blue above and red below, symmetric in magnitude", () => {
  const s = makeColorScale("diverging", [-2, 2]);
  const rgb = (h: string) => [1, 3, 5].map((i) => Number.parseInt(h.slice(i, i + 2), 16));
  // Neutral: red = green = blue (Vega's redblue middle is warm), and light.
  const [r0, g0, b0] = rgb(s.color(0));
  assert.ok(r0 === g0 && g0 === b0 && r0 > 200, s.color(0));
  const [pos, neg] = [s.color(2), s.color(-2)].map(rgb);
  assert.ok(pos[2] > pos[0], "positive end is blue");
  assert.ok(neg[0] > neg[2], "negative end is red");
  // Same distance from the grey middle at +v and -v, linear in |v|.
  const dist = (h: string) => rgb(h).reduce((a, c, i) => a + Math.abs(c - [r0, g0, b0][i]), 0);
  assert.ok(Math.abs(dist(s.color(1)) / dist(s.color(2)) - 0.5) < 0.02);
  assert.ok(Math.abs(dist(s.color(-1)) / dist(s.color(-2)) - 0.5) < 0.02);
});

test("domainOf is symmetric for diverging data and starts at 0 for non-negative sequential data", () => {
  assert.deepEqual(domainOf("diverging", [-0.5, 3, Number.NaN]), [-3, 3]);
  assert.deepEqual(domainOf("sequential", [0.2, 0.9]), [0, 0.9]);
  assert.deepEqual(domainOf("sequential", [-1, 2]), [-1, 2]);
});

test("formatValue keeps 4 significant digits", () => {
  assert.equal(formatValue(0.123456), "0.1235");
  assert.equal(formatValue(-12.3456), "-12.35");
  assert.equal(formatValue(2), "2");
});
