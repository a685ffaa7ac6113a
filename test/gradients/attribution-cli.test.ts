import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { join } from "node:path";
import { test } from "node:test";
import { REPO_ROOT } from "../helpers/fixture.ts";
import { fixturePatchArgs, maxAbsDiff, referenceTensor } from "../helpers/reference.ts";

const args = [...fixturePatchArgs(), "--json"];
const run = (...extra: string[]) =>
  JSON.parse(execFileSync(join(REPO_ROOT, "bin/circuitscope.js"), [...args, ...extra], { encoding: "utf8" }));

test("CLI patch --method attribution: exact patching's JSON shape, the fixture's attrpatch values", () => {
  const neurons = run("--target", "neurons", "--method", "attribution"); // no --layer: every layer
  assert.deepEqual(Object.keys(neurons).sort(), ["axes", "clean", "corrupted", "target", "values"]);
  assert.deepEqual(neurons.axes, ["layer", "neuron"]);
  assert.ok(maxAbsDiff(neurons.values.flat(), referenceTensor("attrpatch.neurons").data) < 1e-4);
});

test("CLI patch --method compare: correlation, slope and the largest disagreements per target", () => {
  const out = run("--target", "mlp_out", "--method", "compare");
  const c = out.mlp_out;
  // Expected from the fixture's references (TransformerLens, float64), computed here by hand.
  const exact = Array.from(referenceTensor("patch.mlp_out").data);
  const est = Array.from(referenceTensor("attrpatch.mlp_out").data);
  const n = exact.length;
  assert.equal(c.n, n);
  const mean = (xs: number[]) => xs.reduce((s, x) => s + x, 0) / xs.length;
  const mx = mean(exact);
  const my = mean(est);
  const sxy = exact.reduce((s, x, i) => s + (x - mx) * (est[i] - my), 0);
  const sxx = exact.reduce((s, x) => s + (x - mx) ** 2, 0);
  const syy = est.reduce((s, y) => s + (y - my) ** 2, 0);
  assert.ok(Math.abs(c.correlation - sxy / Math.sqrt(sxx * syy)) < 1e-3, `correlation ${c.correlation}`);
  assert.ok(Math.abs(c.slope - sxy / sxx) < 1e-3, `slope ${c.slope}`);
  assert.ok(Math.abs(c.intercept - (my - (sxy / sxx) * mx)) < 1e-3, `intercept ${c.intercept}`);
  // The five cells with the largest |estimate - exact|, in order, at their [layer, pos] index.
  const gap = (i: number) => Math.abs(est[i] - exact[i]);
  const expected = [...exact.keys()].sort((a, b) => gap(b) - gap(a)).slice(0, 5);
  assert.deepEqual(
    c.worst.map((w: { index: number[] }) => w.index),
    expected.map((i) => [Math.floor(i / 8), i % 8]),
  );
  for (const [k, w] of c.worst.entries()) {
    assert.ok(Math.abs(w.exact - exact[expected[k]]) < 1e-4);
    assert.ok(Math.abs(w.estimate - est[expected[k]]) < 1e-4);
    assert.match(w.label, new RegExp(`^L${w.index[0]}, pos ${w.index[1]} \\S`));
  }
});
