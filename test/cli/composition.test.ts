import assert from "node:assert/strict";
import { test } from "node:test";
import { runCli } from "../helpers/cli.ts";
import { FIXTURE_DIR } from "../helpers/fixture.ts";
import { loadFixtureModel } from "../helpers/reference.ts";

const model = loadFixtureModel({ backend: "reference" });
const { nHeads: H, dModel: D, dHead: dh } = model.cfg;

/** Dense D x D matrix X[h] @ Y[h]^T (X, Y stored [H, D, dh]) or X[h] @ Y[h] for W_O ([H, dh, D]). */
function dense(x: Float32Array, y: Float32Array, h: number, yIsWO: boolean): Float64Array {
  const out = new Float64Array(D * D);
  for (let i = 0; i < D; i++)
    for (let j = 0; j < D; j++) {
      let s = 0;
      for (let e = 0; e < dh; e++)
        s += x[(h * D + i) * dh + e] * (yIsWO ? y[(h * dh + e) * D + j] : y[(h * D + j) * dh + e]);
      out[i * D + j] = s;
    }
  return out;
}
const frob = (m: Float64Array) => Math.sqrt(m.reduce((a, v) => a + v * v, 0));
function mul(a: Float64Array, b: Float64Array): Float64Array {
  const out = new Float64Array(D * D);
  for (let i = 0; i < D; i++)
    for (let k = 0; k < D; k++) for (let j = 0; j < D; j++) out[i * D + j] += a[i * D + k] * b[k * D + j];
  return out;
}

test("composition --json equals the dense definition ||OV_1 · W_2||_F / (||OV_1||_F ||W_2||_F)", async () => {
  const res = await runCli(["composition", "--model", FIXTURE_DIR, "--json"]);
  assert.equal(res.code, 0, res.stderr);
  const scores = JSON.parse(res.stdout) as Record<"Q" | "K" | "V", number[][]>;
  const b = model.weights.blocks;
  for (const [l1, h1, l2, h2] of [
    [0, 1, 2, 3],
    [1, 0, 2, 2],
  ]) {
    const ov = dense(b[l1].W_V.data, b[l1].W_O.data, h1, true);
    const right = {
      Q: dense(b[l2].W_Q.data, b[l2].W_K.data, h2, false),
      K: dense(b[l2].W_K.data, b[l2].W_Q.data, h2, false),
      V: dense(b[l2].W_V.data, b[l2].W_O.data, h2, true),
    };
    for (const mode of ["Q", "K", "V"] as const) {
      const expected = frob(mul(ov, right[mode])) / (frob(ov) * frob(right[mode]));
      const got = scores[mode][l1 * H + h1][l2 * H + h2];
      assert.ok(Math.abs(got - expected) < 1e-5, `${mode} L${l1}H${h1}→L${l2}H${h2}: ${got} vs ${expected}`);
    }
    // Receivers must come later: the reverse direction is 0.
    assert.equal(scores.Q[l2 * H + h2][l1 * H + h1], 0);
  }
  const bad = await runCli(["composition", "--model", FIXTURE_DIR, "--mode", "X"]);
  assert.notEqual(bad.code, 0);
  assert.match(bad.stderr, /Unknown --mode "X"/);
});
