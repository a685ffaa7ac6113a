/**
 * Feature pages: the direct logit effect against a float64 product of the weights, examples' activations
 * recomputed with the model equal to the index's, quantile groups inside their bands, and the HTML page.
 */
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { nlpCorpusSource } from "../../src/corpus/sources.ts";
import { HookedTransformer } from "../../src/model/hooked-transformer.ts";
import { buildIndex } from "../../src/neurons/build-index.ts";
import { featurePageData } from "../../src/neurons/feature-page.ts";
import { writeFeatureReport } from "../../src/neurons/feature-report.ts";
import { NeuronIndex } from "../../src/neurons/neuron-index.ts";
import { Sae } from "../../src/sae/sae.ts";
import { referenceKernels } from "../../src/tensor/reference-kernels.ts";
import { loadCheckpoint } from "../../src/weights/checkpoint.ts";
import { FIXTURE_DIR } from "../helpers/fixture.ts";
import { randomSaeWeights, saeConfigFor } from "../helpers/random-sae.ts";

const HOOK = "blocks.1.hook_resid_pre";
const D_SAE = 16;
const HISTOGRAM = { lo: 0, hi: 2, bins: 20 };
let model: HookedTransformer;
let sae: Sae;
let index: NeuronIndex;
let workDir: string;

before(async () => {
  model = HookedTransformer.fromCheckpoint(loadCheckpoint(FIXTURE_DIR), { backend: "reference" });
  const dIn = model.cfg.dModel;
  sae = new Sae({
    cfg: saeConfigFor({ architecture: "standard", dIn, dSae: D_SAE, hookName: HOOK }),
    weights: randomSaeWeights({ architecture: "standard", dIn, dSae: D_SAE, seed: 11, encScale: 0.3 }),
    kernels: referenceKernels,
  });
  workDir = mkdtempSync(join(tmpdir(), "circuitscope-feature-page-"));
  await buildIndex(model, nlpCorpusSource(), {
    outDir: join(workDir, "idx"),
    modelName: "tiny-gpt2",
    sae: { sae, path: "random-sae" },
    topK: 5,
    bandSamples: 3,
    histogram: HISTOGRAM,
    contextLen: 16,
    maxTokens: 200,
  });
  index = NeuronIndex.open(join(workDir, "idx"));
});
after(() => rmSync(workDir, { recursive: true, force: true }));

test("the logit effect is W_dec[f] · gain · W_U (float64), its extremes in order", () => {
  const f = 5;
  const page = featurePageData(model, sae, f, { logitTokens: 4 });
  const { dModel: D, dVocab: V } = model.cfg;
  const gain = model.weights.lnFinal?.w.data;
  const W_U = model.weights.W_U.data;
  const want = new Float64Array(V);
  for (let v = 0; v < V; v++) {
    let acc = 0;
    for (let d = 0; d < D; d++) acc += sae.W_dec[f * D + d] * (gain ? gain[d] : 1) * W_U[d * V + v];
    want[v] = acc;
  }
  const order = Array.from(want.keys()).sort((a, b) => want[b] - want[a]);
  assert.ok(page.logitEffect);
  assert.deepEqual(
    page.logitEffect.top.map((t) => t.token),
    order.slice(0, 4),
  );
  assert.deepEqual(
    page.logitEffect.bottom.map((t) => t.token),
    order.slice(-4).reverse(),
  );
  for (const t of page.logitEffect.top) assert.ok(Math.abs(t.value - want[t.token]) < 1e-4);
});

test("examples' recomputed activations match the index; quantile groups lie in their bands", () => {
  let groupsSeen = 0;
  for (let f = 0; f < D_SAE; f++) {
    const page = featurePageData(model, sae, f, { index, bands: 4 });
    assert.ok(page.index);
    for (const e of page.index.examples) {
      assert.ok(Math.abs(e.activations[e.position] - e.value) < 1e-4, `feature ${f} example`);
    }
    const binWidth = (HISTOGRAM.hi - HISTOGRAM.lo) / HISTOGRAM.bins;
    for (const g of page.index.quantileGroups ?? []) {
      for (const e of g.examples) {
        groupsSeen++;
        assert.ok(e.value > 0, `feature ${f}: sampled tokens fire`);
        // Band edges are rounded to histogram bins: within one bin width of the band.
        assert.ok(
          e.value >= g.lo - binWidth && e.value < g.hi + binWidth,
          `feature ${f}: ${e.value} in [${g.lo}, ${g.hi})`,
        );
      }
    }
  }
  assert.ok(groupsSeen > D_SAE, `quantile groups were exercised (${groupsSeen} examples)`);
});

test("a neuron index or an out-of-range feature is refused, naming the fix; the HTML page states its inputs", async () => {
  assert.throws(() => featurePageData(model, sae, D_SAE), /features 0\.\.15/);
  const neurons = join(workDir, "neurons");
  await buildIndex(model, nlpCorpusSource(), {
    outDir: neurons,
    modelName: "tiny-gpt2",
    layers: [0],
    contextLen: 16,
    maxTokens: 40,
  });
  assert.throws(() => featurePageData(model, sae, 0, { index: NeuronIndex.open(neurons) }), /index --sae/);
  const html = join(workDir, "f.html");
  writeFeatureReport(
    html,
    featurePageData(model, sae, 2, { index, saeName: "random-sae", modelName: "tiny-gpt2" }),
  );
  const text = readFileSync(html, "utf8");
  assert.match(text, /SAE random-sae at blocks\.1\.hook_resid_pre; feature 2/);
  assert.match(text, /Quantile groups/);
});
