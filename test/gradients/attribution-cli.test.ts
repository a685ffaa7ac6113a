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
  assert.ok(c.correlation > -1 && c.correlation < 1, `correlation ${c.correlation}`);
  assert.equal(c.n, 3 * 8);
  assert.equal(c.worst.length, 5);
  // Each listed cell carries the reference values at its location.
  const [w] = c.worst;
  const cell = w.index[0] * 8 + w.index[1];
  assert.ok(Math.abs(w.exact - referenceTensor("patch.mlp_out").data[cell]) < 1e-4);
  assert.ok(Math.abs(w.estimate - referenceTensor("attrpatch.mlp_out").data[cell]) < 1e-4);
});
