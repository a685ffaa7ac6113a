import assert from "node:assert/strict";
import { test } from "node:test";
import { linearAgreement } from "../../src/analysis/correlation.ts";
import { normalizedLogitDiffMetric } from "../../src/gradients/logit-metric.ts";
import { activationPatching } from "../../src/patching/activation-patching.ts";
import { compareAttribution } from "../../src/patching/attribution-compare.ts";
import {
  type AttributionTarget,
  attributionPatching,
  attributionPatchingAll,
} from "../../src/patching/attribution-patching.ts";
import { loadFixtureModel, maxAbsDiff, referenceJson, referenceTensor } from "../helpers/reference.ts";

const model = loadFixtureModel();
const { prompts: p, scalars } = referenceJson;
const pair = {
  clean: p.clean_tokens,
  corrupted: p.corrupted_tokens,
  answers: { answer: p.answer_token, wrong: p.wrong_token },
};

const FIXTURE_TARGETS: [string, AttributionTarget][] = [
  ["resid_pre", { kind: "resid_pre" }],
  ["attn_out", { kind: "attn_out" }],
  ["mlp_out", { kind: "mlp_out" }],
  ["head_z", { kind: "head", component: "z" }],
  ["head_q", { kind: "head", component: "q" }],
  ["head_k", { kind: "head", component: "k" }],
  ["head_v", { kind: "head", component: "v" }],
  ["head_pattern", { kind: "head", component: "pattern" }],
  ["neurons", { kind: "neurons" }], // every layer, all positions: [layer, d_mlp]
];

test("attribution patching matches the fixture's attrpatch.* references", () => {
  const results = attributionPatchingAll(model, { ...pair, targets: FIXTURE_TARGETS.map(([, t]) => t) });
  results.forEach((r, i) => {
    const name = FIXTURE_TARGETS[i][0];
    const ref = referenceTensor(`attrpatch.${name}`);
    assert.equal(r.target, name);
    assert.deepEqual(r.shape, ref.shape, name);
    assert.equal(r.method, "attribution");
    const d = maxAbsDiff(Float32Array.from(r.values), ref.data);
    assert.ok(d <= 1e-4, `attrpatch.${name}: max |diff| ${d}`);
  });
  assert.ok(Math.abs(results[0].clean - scalars.clean_logit_diff) < 1e-4);
  assert.ok(Math.abs(results[0].corrupted - scalars.corrupted_logit_diff) < 1e-4);
});

test("batch estimates are the mean of the per-prompt estimates (logit difference is a batch mean)", () => {
  const r = attributionPatching(model, { ...pair, target: { kind: "attn_out" } });
  const n = r.raw.length;
  for (let s = 0; s < n; s++) {
    const mean = (r.perPrompt.raw[s] + r.perPrompt.raw[n + s]) / 2;
    assert.ok(Math.abs(mean - r.raw[s]) < 1e-6, `cell ${s}: ${mean} vs ${r.raw[s]}`);
  }
  // The two prompts really differ, so the check is not trivially met.
  assert.ok(
    maxAbsDiff(
      Float32Array.from(r.perPrompt.raw.subarray(0, n)),
      Float32Array.from(r.perPrompt.raw.subarray(n)),
    ) > 1e-3,
  );
});

test("per-prompt estimates are normalised with each prompt's own clean and corrupted logit differences", async () => {
  // Each prompt's clean and corrupted logit difference, read here from the final logits of a plain run.
  const perPromptDiff = (prompts: number[][]) =>
    prompts.map((toks) => {
      const logits = model.run([toks]).data;
      const V = model.cfg.dVocab;
      const row = logits.subarray((toks.length - 1) * V, toks.length * V);
      return row[p.answer_token] - row[p.wrong_token];
    });
  const clean = perPromptDiff(p.clean_tokens);
  const corrupted = perPromptDiff(p.corrupted_tokens);
  const target: AttributionTarget = { kind: "attn_out" };
  const est = attributionPatching(model, { ...pair, target });
  const exact = await activationPatching(model, { ...pair, target });
  for (const r of [est, exact]) {
    const n = r.raw.length;
    for (let b = 0; b < 2; b++) {
      assert.ok(Math.abs(r.perPrompt.clean[b] - clean[b]) < 1e-4, `${r.method}: clean of prompt ${b}`);
      assert.ok(Math.abs(r.perPrompt.corrupted[b] - corrupted[b]) < 1e-4, `${r.method}: corrupted of ${b}`);
      for (let s = 0; s < n; s++) {
        const expected = (r.perPrompt.raw[b * n + s] - corrupted[b]) / (clean[b] - corrupted[b]);
        const got = r.perPrompt.values[b * n + s];
        assert.ok(
          Math.abs(got - expected) < 1e-4,
          `${r.method} prompt ${b} cell ${s}: ${got} vs ${expected}`,
        );
      }
    }
  }
  // The two prompts' clean-corrupted gaps differ, so normalising by the batch gap would not pass.
  assert.ok(Math.abs(clean[0] - corrupted[0] - (clean[1] - corrupted[1])) > 1e-2);
});

test("user metrics: an answer_logits function and a LogitMetric agree with the chain rule", () => {
  const target: AttributionTarget = { kind: "head", component: "v" };
  const base = attributionPatching(model, { ...pair, target });
  // The same metric given as a LogitMetric (analytic gradient) and as a function (numeric gradient).
  const asLogitMetric = attributionPatching(model, {
    ...pair,
    target,
    metric: normalizedLogitDiffMetric(p.answer_token, p.wrong_token, base.clean, base.corrupted),
  });
  assert.ok(maxAbsDiff(Float32Array.from(asLogitMetric.raw), Float32Array.from(base.values)) < 1e-6);
  const meanDiff = (rs: readonly Float64Array[]) => rs.reduce((s, r) => s + r[0] - r[1], 0) / rs.length;
  const asFunction = attributionPatching(model, {
    ...pair,
    target,
    metric: { kind: "answer_logits", fn: meanDiff },
  });
  assert.ok(maxAbsDiff(Float32Array.from(asFunction.raw), Float32Array.from(base.raw)) < 1e-5);
  // A nonlinear function g(m) of the logit difference: first order, its estimate moves by g'(m_corrupted)
  // times the logit-difference estimate.
  const squared = attributionPatching(model, {
    ...pair,
    target,
    metric: { kind: "answer_logits", fn: (rs) => meanDiff(rs) ** 2 },
  });
  const g1 = 2 * base.corrupted;
  for (let s = 0; s < base.raw.length; s++) {
    const expected = g1 * (base.raw[s] - base.corrupted);
    assert.ok(Math.abs(squared.raw[s] - squared.corrupted - expected) < 1e-5, `cell ${s}`);
  }
  assert.throws(
    () => attributionPatching(model, { ...pair, target, metric: { kind: "final_logits", fn: () => 0 } }),
    /needs the metric's gradient/,
  );
});

test("comparison: correlation 1 where the metric is exactly linear in the patch (ln_final's output)", async () => {
  // Logits are an affine function of ln_final.hook_normalized, so patching (parts of) it changes the
  // logit difference exactly by (clean - corrupted) · gradient: the first-order estimate is exact.
  const indexSets = [];
  for (let pos = 0; pos < 8; pos++)
    for (let c = 0; c < 8; c++)
      indexSets.push([
        [pos, 8 * c],
        [pos, 8 * c + 3],
        [pos, 8 * c + 6],
      ] as const);
  const [cmp] = await compareAttribution(model, {
    ...pair,
    targets: [{ kind: "custom", hook: "ln_final.hook_normalized", indexSets }],
  });
  assert.ok(Math.abs(cmp.correlation - 1) < 1e-6, `correlation ${cmp.correlation}`);
  assert.ok(Math.abs(cmp.slope - 1) < 1e-4, `slope ${cmp.slope}`);
  // Only final-position sets move the metric; they move it by a non-trivial amount.
  let moved = 0;
  cmp.exact.values.forEach((v, i) => {
    if (i < 7 * 8) assert.ok(Math.abs(v) < 1e-6);
    else moved = Math.max(moved, Math.abs(v));
  });
  assert.ok(moved > 0.05);
});

test("comparison flags the early residual stream, where the linear estimate fails", async () => {
  const [resid, neurons] = await compareAttribution(model, {
    ...pair,
    targets: [{ kind: "resid_pre" }, { kind: "neurons" }],
    worst: 3,
  });
  // Exact values are the exact-patching helper's (fixture reference), estimates the attribution's.
  assert.ok(
    maxAbsDiff(Float32Array.from(resid.exact.values), referenceTensor("patch.resid_pre").data) < 1e-4,
  );
  assert.ok(
    maxAbsDiff(Float32Array.from(resid.estimate.values), referenceTensor("attrpatch.resid_pre").data) < 1e-4,
  );
  const check = linearAgreement(resid.exact.values, resid.estimate.values);
  assert.equal(resid.correlation, check.correlation);
  assert.equal(resid.slope, check.slope);
  assert.ok(resid.correlation < 0.9, `resid_pre correlation ${resid.correlation}`);
  // Worst first: patching resid_pre at the corrupted token restores everything (exact 1) but the
  // estimate overshoots threefold.
  assert.deepEqual(resid.worst[0].index, [0, 2]);
  assert.ok(Math.abs(resid.worst[0].exact - 1) < 1e-4);
  const gaps = resid.worst.map((w) => Math.abs(w.estimate - w.exact));
  assert.ok(gaps[0] >= gaps[1] && gaps[1] >= gaps[2]);
  // All-layer neurons: the exact side is stacked from per-layer sweeps ([layer, neuron]).
  assert.deepEqual(neurons.exact.shape, [3, model.cfg.dMlp]);
  const layer2 = neurons.exact.values.subarray(2 * model.cfg.dMlp);
  assert.ok(
    maxAbsDiff(Float32Array.from(layer2), referenceTensor("patch.neurons_layer2_all_pos").data) < 1e-4,
  );
  assert.ok(neurons.correlation > resid.correlation);
});

test("linearAgreement: correlation, slope and intercept", () => {
  const x = [1, 2, 3, 4, 7];
  const a = linearAgreement(
    x,
    x.map((v) => 2 * v + 1),
  );
  assert.ok(Math.abs(a.correlation - 1) < 1e-12);
  assert.ok(Math.abs(a.slope - 2) < 1e-12 && Math.abs(a.intercept - 1) < 1e-12);
  assert.ok(
    Math.abs(
      linearAgreement(
        x,
        x.map((v) => -v),
      ).correlation + 1,
    ) < 1e-12,
  );
  // Hand-computed: x = [0, 1, 2], y = [0, 2, 1] → r = 0.5, slope 0.5.
  const b = linearAgreement([0, 1, 2], [0, 2, 1]);
  assert.ok(Math.abs(b.correlation - 0.5) < 1e-12 && Math.abs(b.slope - 0.5) < 1e-12);
  assert.ok(Number.isNaN(linearAgreement([1, 1, 1], [1, 2, 3]).correlation));
});

test("exact patching and attribution return the same result shape", async () => {
  const target = { kind: "head" as const, component: "k" as const };
  const exact = await activationPatching(model, { ...pair, target });
  const est = attributionPatching(model, { ...pair, target });
  assert.deepEqual(Object.keys(est).sort(), Object.keys(exact).sort());
  assert.deepEqual(est.axes, exact.axes);
  assert.deepEqual(est.shape, exact.shape);
  assert.equal(est.perPrompt.raw.length, exact.perPrompt.raw.length);
  assert.ok(Math.abs(est.clean - exact.clean) < 1e-5 && Math.abs(est.corrupted - exact.corrupted) < 1e-5);
});
