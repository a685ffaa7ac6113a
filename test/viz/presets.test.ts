/** Figures from results in one place (issue #15/#17): the patching and attribution presets. */
import assert from "node:assert/strict";
import { test } from "node:test";
import type { AttributionResult } from "../../src/analysis/attribute.ts";
import { patchResult } from "../../src/patching/result.ts";
import type { PatchResult } from "../../src/patching/types.ts";
import { attributionFigures, largestChange } from "../../src/viz/presets/attribution-figures.ts";
import { FRACTION_RESTORED, patchFigures } from "../../src/viz/presets/patch-figures.ts";

function result(
  axes: string[],
  shape: number[],
  labels: (string[] | null)[] = axes.map(() => null),
): PatchResult {
  const n = shape.reduce((a, b) => a * b, 1);
  const values = Float64Array.from({ length: n }, (_, i) => Math.sin(i + 1));
  return patchResult({
    target: "t",
    axes,
    shape,
    labels,
    values,
    raw: values,
    clean: 2,
    corrupted: -1,
    perPrompt: { raw: values, values, clean: [2], corrupted: [-1] },
    method: "exact",
  });
}

test("patchFigures: [component, layer, head] is ONE panel figure with the component names and one domain", () => {
  const r = result(["component", "layer", "head"], [5, 2, 3], [["z", "q", "k", "v", "pattern"], null, null]);
  const [f] = patchFigures(r);
  const data = f.figure.data as { panels: { title: string; values: number[][] }[]; domain: number[] };
  assert.deepEqual(
    data.panels.map((p) => p.title),
    ["z", "q", "k", "v", "pattern"],
  );
  // Panel c, layer l, head h is values[(c * 2 + l) * 3 + h].
  assert.equal(data.panels[3].values[1][2], r.values[(3 * 2 + 1) * 3 + 2]);
  const m = Math.max(...Array.from(r.values, Math.abs));
  assert.deepEqual(data.domain, [-m, m]);
  assert.match(f.caption ?? "", /ONE shared colour scale/);
});

test("patchFigures: [layer, pos, head] panels are positions, each a layer x head grid", () => {
  const r = result(["layer", "pos", "head"], [2, 3, 4], [null, ["<|endoftext|>", "A", " b"], null]);
  const [f] = patchFigures(r);
  const data = f.figure.data as { panels: { title: string; values: number[][] }[] };
  assert.deepEqual(
    data.panels.map((p) => p.title),
    ["0: <|endoftext|>", "1: A", "2: ·b"],
  );
  assert.equal(data.panels[2].values[1][3], r.values[(1 * 3 + 2) * 4 + 3]);
});

test("patchFigures: the metric has one name, and the caption names the largest cell", () => {
  const r = result(["layer", "head"], [2, 3]);
  const [f] = patchFigures(r);
  assert.equal(
    (f.figure.spec as { layer: { encoding: { color: { title: string } } }[] }).layer[0].encoding.color.title,
    FRACTION_RESTORED,
  );
  let best = 0;
  r.values.forEach((v, i) => {
    if (Math.abs(v) > Math.abs(r.values[best])) best = i;
  });
  assert.match(f.caption ?? "", new RegExp(`L${Math.floor(best / 3)}, H${best % 3} = `));
});

test("patchFigures: an unknown result axis is an error naming it, not a guess", () => {
  assert.throws(
    () => patchFigures(result(["layer", "mystery"], [2, 2])),
    /no figure for result axes \[layer, mystery\]/,
  );
});

test("patchFigures: long 1-D results draw the largest cells, in index (layer) order", () => {
  const r = result(["layer", "neuron"], [3, 40]);
  const [f] = patchFigures(r);
  const labels = (f.figure.data as { labels: string[] }).labels;
  assert.equal(labels.length, 40);
  const index = labels.map((l) => {
    const m = /^L(\d+) N(\d+)$/.exec(l)!;
    return Number(m[1]) * 40 + Number(m[2]);
  });
  assert.deepEqual(
    index,
    [...index].sort((a, b) => a - b),
    "in layer order",
  );
  const smallestShown = Math.min(...index.map((i) => Math.abs(r.values[i])));
  const hidden = Array.from(r.values.keys()).filter((i) => !index.includes(i));
  assert.ok(hidden.every((i) => Math.abs(r.values[i]) <= smallestShown));
});

test("largestChange names the biggest step either way: a fall beats a smaller rise", () => {
  assert.equal(
    largestChange(["a", "b", "c", "d"], [0, 0.08, -0.47, -0.4]),
    "Largest change: fall of 0.55 from b to c.",
  );
  assert.equal(largestChange(["a", "b"], [0, 0.3]), "Largest change: rise of 0.3 from a to b.");
});

/** A two-prompt attribution result with labelled pieces (values [n, batch, 1]). */
function attribution(pieces: Record<string, [number, number]>): AttributionResult["decomposed"] {
  const labels = Object.keys(pieces);
  const values = Float64Array.from(labels.flatMap((l) => pieces[l]));
  const mean = Float64Array.from(labels.map((l) => (pieces[l][0] + pieces[l][1]) / 2));
  return { labels, batch: 2, nPos: 1, values, mean };
}

test("attribution captions give ±1 SE, say when an interval includes 0, and name the largest change either way", () => {
  const r = {
    logitDiff: { perPrompt: [1, 1.2], mean: 1.1 },
    accumulated: attribution({ embed: [0, 0], "0_pre": [0.1, 0.06], "1_pre": [-0.5, -0.4] }),
    decomposed: attribution({ embed: [0.01, -0.01], "0_attn_out": [1, 1.2] }),
    heads: attribution({ L0H0: [0.2, -0.2], L0H1: [0.9, 1.1] }),
    offsets: [0, 0],
    lengths: [3, 3],
  } as unknown as AttributionResult;
  const figs = attributionFigures(r, {
    prompts: ["a", "b"],
    answer: "'re",
    wrong: " are",
    nLayers: 1,
    nHeads: 2,
  });
  assert.match(figs.accumulated.caption ?? "", /Largest change: fall of 0\.53 from 0_pre to 1_pre/);
  assert.match(figs.accumulated.caption ?? "", /±1 SE over the 2 prompts/);
  // 0_attn_out: mean 1.1, SE = sd([1, 1.2]) / sqrt(2) = 0.1.
  assert.match(figs.decomposed.caption ?? "", /0_attn_out \+1\.1 ± 0\.1 SE/);
  const bars = figs.decomposed.figure.data as { lower: number[]; upper: number[] };
  assert.ok(Math.abs(bars.upper[1] - 1.2) < 1e-12 && Math.abs(bars.lower[1] - 1.0) < 1e-12);
  const h = attributionFigures(
    { ...r, heads: attribution({ L0H0: [0.3, -0.1], L0H1: [0.05, 0.01] }) } as AttributionResult,
    { prompts: ["a", "b"], answer: "'re", wrong: " are", nLayers: 1, nHeads: 2 },
  );
  assert.match(
    h.heads.caption ?? "",
    /L0H0 \+0\.1 ± 0\.2 SE \(the ±2 SE interval includes 0: no clear effect\)/,
  );
  assert.match(figs.accumulated.figure.title, /accumulated/);
  assert.match(
    String((figs.accumulated.figure.data as { series: { name: string }[] }).series[0].name),
    /mean over 2 prompts/,
  );
});
