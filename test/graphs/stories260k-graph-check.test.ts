/**
 * Issue 30's check on the real model: stories260k with the bundled transcoder set, the pronoun study's first
 * focus prompt (seed 0), ending where " she" is predicted. Ablating the graph's top feature into the " she"
 * logit (largest |total effect|) in the real model, transcoders spliced in and errors held (graph-check.ts),
 * moves the logit the way the graph says; for the top feature of the last layer at the last position (nothing
 * but the readout downstream) the frozen ablation is the graph's total effect exactly, and unfrozen the gap is
 * ln_final's new scale exactly.
 *
 * Measured (2026-12-05, the set retrained at 1,000 steps, "Once there was a little girl. The other day,"):
 * the top feature is 2_246_15, graph total −1.070, frozen ablation −0.470 (same sign; lower-layer features are
 * not exact even frozen: downstream JumpReLU features cross their thresholds), unfrozen −0.138.
 */
import assert from "node:assert/strict";
import { before, describe, it } from "node:test";
import { attributeGraph } from "../../src/graphs/attribute-graph.ts";
import type { AttributionGraph } from "../../src/graphs/attribution-graph.ts";
import { nodeRanges } from "../../src/graphs/attribution-graph.ts";
import { checkTopFeatures, measureIntervention } from "../../src/graphs/graph-check.ts";
import type { ReplacementRun } from "../../src/graphs/replacement-run.ts";
import { loadTranscoderSet, type TranscoderSet } from "../../src/graphs/transcoder-set.ts";
import { HookedTransformer } from "../../src/model/hooked-transformer.ts";
import { pronounsSpec } from "../../src/studies/pronouns/spec.ts";
import { lastLayerAblationUnfrozen } from "../helpers/ln-final-rescale.ts";

const SET_DIR = new URL("../../models/stories260k-transcoders", import.meta.url).pathname;

describe("stories260k, bundled transcoders: ablating the top feature into ' she' in the real model", () => {
  let model: HookedTransformer;
  let set: TranscoderSet;
  let attributed: { graph: AttributionGraph; run: ReplacementRun };
  let she: number;
  let prompt: string;

  before(async () => {
    model = await HookedTransformer.fromPretrained("stories260k", { backend: "reference" });
    set = await loadTranscoderSet(SET_DIR);
    const focus = pronounsSpec.groups.filter((g) => g.name === pronounsSpec.focusGroup);
    const [pair] = pronounsSpec.generate(focus, () => 1, 0);
    assert.equal(pair.answer, " she");
    prompt = pair.clean;
    she = model.toSingleToken(pair.answer);
    attributed = await attributeGraph(model, model.toTokens(prompt), set, { targets: [she] });
  });

  it("the top feature: its ablation moves the logit the graph's way, frozen and unfrozen", () => {
    const [frozen] = checkTopFeatures(model, set, attributed, { top: 1, freeze: true });
    const [free] = checkTopFeatures(model, set, attributed, { top: 1 });
    assert.ok(
      Math.abs(frozen.predictedTotal) > 0.5,
      `${prompt}: top feature ${frozen.nodeId} predicts ${frozen.predictedTotal}`,
    );
    for (const c of [frozen, free]) {
      assert.equal(Math.sign(c.measured), Math.sign(c.predictedTotal), `${c.nodeId}: ${JSON.stringify(c)}`);
      assert.ok(Math.abs(c.measured) > 0.05, `${c.nodeId}: measured ${c.measured} is not noise`);
    }
  });

  /** The last-layer, last-position feature with the largest |total effect| (checked frozen). */
  function topLastLayer(freeze: boolean) {
    const { graph } = attributed;
    const last = (i: number) =>
      graph.features[i].layer === model.cfg.nLayers - 1 &&
      graph.features[i].pos === graph.inputTokens.length - 1;
    const ranked = checkTopFeatures(model, set, attributed, { top: graph.features.length, freeze });
    const top = ranked.find((c) => last(c.index));
    assert.ok(top, "a last-layer feature is active at the last position");
    return top;
  }

  it("the top last-layer feature, frozen as the graph is: the measured change equals the graph's total (1e-3)", () => {
    const top = topLastLayer(true);
    assert.ok(Math.abs(top.predictedTotal) > 0.05, `${top.nodeId} predicts ${top.predictedTotal}`);
    assert.ok(
      Math.abs(top.measured - top.predictedTotal) <= 1e-3 * (1 + Math.abs(top.predictedTotal)),
      `${top.nodeId}: measured ${top.measured}, graph total ${top.predictedTotal}`,
    );
  });

  it("the top last-layer feature unfrozen: the same sign, and the gap is exactly ln_final's new scale", () => {
    const top = topLastLayer(false);
    assert.equal(
      Math.sign(top.measured),
      Math.sign(top.predictedTotal),
      `${top.nodeId}: ${JSON.stringify(top)}`,
    );
    const { graph } = attributed;
    const { nNodes: n, logitStart } = nodeRanges(graph);
    const edge = graph.adjacency[logitStart * n + top.index];
    const { expected } = lastLayerAblationUnfrozen(model, set, attributed, {
      index: top.index,
      token: she,
      edge,
    });
    assert.ok(Math.abs(top.measured - expected) <= 1e-3, `measured ${top.measured}, expected ${expected}`);
    // and measureIntervention is what checkTopFeatures reports
    const again = measureIntervention(model, set, attributed, she, [{ index: top.index, value: 0 }]);
    assert.equal(again, top.measured);
  });
});
