/**
 * A graph checked in the real model (feature interventions with the transcoders spliced in, errors held) on a
 * tiny random Qwen2-like model with random transcoders: what must be exact is exact, and the one thing the
 * graph freezes that the real model does not (ln_final's scale) is accounted for by its own formula.
 */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { attributeGraph } from "../../src/graphs/attribute-graph.ts";
import { nodeRanges } from "../../src/graphs/attribution-graph.ts";
import { checkTopFeatures, featureLogitEffects, measureIntervention } from "../../src/graphs/graph-check.ts";
import { HookedTransformer } from "../../src/model/hooked-transformer.ts";
import { loadCheckpoint } from "../../src/weights/checkpoint.ts";
import { makeGemma2Checkpoint } from "../helpers/gemma2-variants.ts";
import { tinyModelWithTranscoders } from "../helpers/linear-replacement.ts";
import { lastLayerAblationUnfrozen } from "../helpers/ln-final-rescale.ts";
import { randomTranscoderSet } from "../helpers/random-transcoder.ts";
import { loadFixtureModel } from "../helpers/reference.ts";

const root = mkdtempSync(join(tmpdir(), "circuitscope-graph-check-"));
after(() => rmSync(root, { recursive: true, force: true }));

const TOKENS = [1, 17, 300, 45, 9, 88, 120];
const TARGET = 300;

async function fixture() {
  const { model, set } = tinyModelWithTranscoders(root);
  const attributed = await attributeGraph(model, TOKENS, set, { targets: [TARGET, 45] });
  return { model, set, attributed };
}

const close = (got: number, want: number, tol: number) => Math.abs(got - want) <= tol * (1 + Math.abs(want));

test("a last-layer feature at the last position: with patterns and scales frozen, ablation moves the logit by exactly its edge", async () => {
  const { model, set, attributed } = await fixture();
  const { graph } = attributed;
  const L = model.cfg.nLayers;
  const last = TOKENS.length - 1;
  const { nNodes: n, logitStart } = nodeRanges(graph);
  const candidates = Array.from(graph.features.keys()).filter(
    (i) => graph.features[i].layer === L - 1 && graph.features[i].pos === last,
  );
  assert.ok(candidates.length >= 2, `${candidates.length} last-layer features at the last position`);
  const { direct, total } = featureLogitEffects(graph);
  for (const i of candidates) {
    const edge = graph.adjacency[logitStart * n + i];
    assert.ok(Math.abs(edge) > 1e-3, `edge ${edge}`);
    // nothing but the frozen readout is downstream: total = direct = edge per unit of activation
    assert.ok(close(direct[i] * graph.features[i].activation, edge, 1e-6));
    assert.equal(total[i], direct[i]);
    const measured = measureIntervention(model, set, attributed, TARGET, [{ index: i, value: 0 }], {
      freeze: true,
    });
    assert.ok(close(measured, -edge, 1e-4), `feature ${i}: measured ${measured}, edge ${edge}`);
  }
});

test("without freezing, the last-layer ablation differs from the edge only by ln_final's new scale (s / s')", async () => {
  const { model, set, attributed } = await fixture();
  const { graph } = attributed;
  const L = model.cfg.nLayers;
  const last = TOKENS.length - 1;
  const { nNodes: n, logitStart } = nodeRanges(graph);
  const i = Array.from(graph.features.keys()).find(
    (j) => graph.features[j].layer === L - 1 && graph.features[j].pos === last,
  )!;
  const edge = graph.adjacency[logitStart * n + i];
  const measured = measureIntervention(model, set, attributed, TARGET, [{ index: i, value: 0 }]);
  const { expected, scaleRatio } = lastLayerAblationUnfrozen(model, set, attributed, {
    index: i,
    token: TARGET,
    edge,
  });
  assert.ok(close(measured, expected, 1e-4), `measured ${measured}, expected ${expected} (edge ${edge})`);
  assert.ok(Math.abs(scaleRatio - 1) > 1e-4, "the ablation changes ln_final's scale");
});

test("a layer-0 feature, frozen, nudged by 1%: the measured change is the graph's total effect, not its direct one", async () => {
  const { model, set, attributed } = await fixture();
  const { graph } = attributed;
  const { direct, total } = featureLogitEffects(graph);
  const layer0 = Array.from(graph.features.keys()).filter((i) => graph.features[i].layer === 0);
  // the layer-0 feature whose indirect paths matter most
  const i = layer0.sort((a, b) => Math.abs(total[b] - direct[b]) - Math.abs(total[a] - direct[a]))[0];
  const a = graph.features[i].activation;
  const measured = measureIntervention(model, set, attributed, TARGET, [{ index: i, value: 0.99 * a }], {
    freeze: true,
  });
  const predicted = -0.01 * a * total[i];
  const directOnly = -0.01 * a * direct[i];
  assert.ok(
    close(measured, predicted, 1e-3),
    `measured ${measured}, total ${predicted}, direct ${directOnly}`,
  );
  assert.ok(
    Math.abs(predicted - directOnly) > 10 * 1e-3 * (1 + Math.abs(predicted)),
    "indirect paths matter",
  );
});

test("checkTopFeatures ranks by predicted total effect and reports each measured ablation", async () => {
  const { model, set, attributed } = await fixture();
  const { graph } = attributed;
  const checks = checkTopFeatures(model, set, attributed, { top: 3, freeze: true });
  assert.equal(checks.length, 3);
  const { total } = featureLogitEffects(graph);
  const score = (i: number) => Math.abs(total[i] * graph.features[i].activation);
  const best = Math.max(...Array.from(graph.features.keys(), score));
  assert.equal(score(checks[0].index), best);
  for (let k = 1; k < checks.length; k++) assert.ok(score(checks[k - 1].index) >= score(checks[k].index));
  for (const c of checks) {
    const f = graph.features[c.index];
    assert.equal(c.nodeId, `${f.layer}_${f.feature}_${f.pos}`);
    assert.ok(close(c.predictedTotal, -f.activation * total[c.index], 1e-9));
    const again = measureIntervention(model, set, attributed, TARGET, [{ index: c.index, value: 0 }], {
      freeze: true,
    });
    assert.equal(c.measured, again);
  }
});

test("GPT-2 (LayerNorm, learned positions, biases; processed weights): the frozen real model agrees with the graph's edges and totals", async () => {
  const model = loadFixtureModel();
  const L = model.cfg.nLayers;
  const set = randomTranscoderSet({
    layers: L,
    dModel: model.cfg.dModel,
    dTc: 16,
    seed: 60,
    jump: (l) => l === 1,
    skip: (l) => l === 2,
  });
  const tokens = [50256, 464, 3290, 3332, 319, 262, 2603];
  const attributed = await attributeGraph(model, tokens, set, { targets: [262, 290] });
  const { graph } = attributed;
  const { nNodes: n, logitStart } = nodeRanges(graph);
  const { direct, total } = featureLogitEffects(graph);
  const last = tokens.length - 1;
  const lastLayer = Array.from(graph.features.keys()).filter(
    (i) => graph.features[i].layer === L - 1 && graph.features[i].pos === last,
  );
  assert.ok(lastLayer.length >= 2);
  for (const i of lastLayer.slice(0, 3)) {
    const edge = graph.adjacency[logitStart * n + i];
    const measured = measureIntervention(model, set, attributed, 262, [{ index: i, value: 0 }], {
      freeze: true,
    });
    assert.ok(close(measured, -edge, 1e-4), `feature ${i}: measured ${measured}, edge ${edge}`);
  }
  const layer0 = Array.from(graph.features.keys()).filter((i) => graph.features[i].layer === 0);
  const i = layer0.sort((a, b) => Math.abs(total[b] - direct[b]) - Math.abs(total[a] - direct[a]))[0];
  const a = graph.features[i].activation;
  const measured = measureIntervention(model, set, attributed, 262, [{ index: i, value: 0.99 * a }], {
    freeze: true,
  });
  assert.ok(
    close(measured, -0.01 * a * total[i], 1e-3),
    `measured ${measured}, total ${-0.01 * a * total[i]}`,
  );
  assert.ok(Math.abs(total[i] - direct[i]) > 1e-2 * (1 + Math.abs(total[i])), "indirect paths matter");
  model.dispose();
});

test("soft-capped Gemma 2: the check measures the demeaned PRE-cap logit, the graph's own target, so a frozen last-layer ablation equals its edge", async () => {
  // Variant 0 caps its final logits at 3: a post-cap measurement would be bent by the cap's slope.
  const model = HookedTransformer.fromCheckpoint(loadCheckpoint(makeGemma2Checkpoint(root, 0).dir));
  try {
    assert.equal(model.cfg.finalSoftCap, 3);
    const L = model.cfg.nLayers;
    const set = randomTranscoderSet({
      layers: L,
      dModel: model.cfg.dModel,
      dTc: 16,
      seed: 61,
      jump: () => false,
      skip: () => false,
    });
    const tokens = [2, 17, 300, 45, 9, 88];
    const attributed = await attributeGraph(model, tokens, set, { targets: [300] });
    const { graph } = attributed;
    const { nNodes: n, logitStart } = nodeRanges(graph);
    const last = tokens.length - 1;
    const lastLayer = Array.from(graph.features.keys())
      .filter((i) => graph.features[i].layer === L - 1 && graph.features[i].pos === last)
      .sort(
        (a, b) =>
          Math.abs(graph.adjacency[logitStart * n + b]) - Math.abs(graph.adjacency[logitStart * n + a]),
      );
    assert.ok(lastLayer.length >= 2, `${lastLayer.length} last-layer features at the last position`);
    for (const i of lastLayer.slice(0, 3)) {
      const edge = graph.adjacency[logitStart * n + i];
      const measured = measureIntervention(model, set, attributed, 300, [{ index: i, value: 0 }], {
        freeze: true,
      });
      assert.ok(close(measured, -edge, 1e-4), `feature ${i}: measured ${measured}, edge ${edge}`);
    }
    // Not vacuous: the largest edge is big enough that the cap's slope would show in a post-cap measurement.
    assert.ok(Math.abs(graph.adjacency[logitStart * n + lastLayer[0]]) > 0.05);
  } finally {
    model.dispose();
  }
});
