/**
 * Issue 30's check on the real model: stories260k with the bundled transcoder set, the pronoun study's first
 * focus prompt (seed 0), ending where " she" is predicted. Ablating the graph's top feature into the " she"
 * logit (largest |total effect|) in the real model, transcoders spliced in and errors held (graph-check.ts),
 * moves the logit the way the graph says.
 *
 * Measured (2026-12-05, "Once there was a little girl. The other day,"): the top feature is 4_348_15
 * (activation 0.895; its edge into " she" is negative), graph total effect of ablating it +1.503. Frozen
 * (patterns and norm scales pinned, the graph's own linearisation): measured +1.503, equal to 1e-4, as it must
 * be for a last-layer feature. Unfrozen: measured +0.755, the same sign and about half the size; the
 * difference is ln_final's scale responding to the removed write, which the second test computes exactly. Lower-layer
 * features are not exact even frozen (downstream JumpReLU features cross their thresholds): the third-ranked
 * 3_490_15 is predicted −0.713 and measures +0.662 frozen — the graph is a linearisation, not a promise.
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

  it("frozen as the graph is: the measured change equals the graph's total effect (sign and size, 1e-3)", () => {
    const [top] = checkTopFeatures(model, set, attributed, { top: 1, freeze: true });
    assert.ok(
      Math.abs(top.predictedTotal) > 0.5,
      `${prompt}: top feature ${top.nodeId} predicts ${top.predictedTotal}`,
    );
    assert.equal(
      Math.sign(top.measured),
      Math.sign(top.predictedTotal),
      `${top.nodeId}: ${JSON.stringify(top)}`,
    );
    assert.ok(
      Math.abs(top.measured - top.predictedTotal) <= 1e-3 * (1 + Math.abs(top.predictedTotal)),
      `${top.nodeId}: measured ${top.measured}, graph total ${top.predictedTotal}`,
    );
  });

  it("unfrozen: the same sign, 0.3 to 1.0 of the graph's size, and the gap is exactly ln_final's new scale", () => {
    const [top] = checkTopFeatures(model, set, attributed, { top: 1 });
    assert.equal(
      Math.sign(top.measured),
      Math.sign(top.predictedTotal),
      `${top.nodeId}: ${JSON.stringify(top)}`,
    );
    const ratio = top.measured / top.predictedTotal;
    assert.ok(ratio >= 0.3 && ratio <= 1, `${top.nodeId}: measured / graph total = ${ratio}`);
    // The top feature sits in the last layer at the last position (nothing but the readout downstream), so
    // without freezing the only change is ln_final's scale.
    const { graph } = attributed;
    const f = graph.features[top.index];
    assert.deepEqual([f.layer, f.pos], [model.cfg.nLayers - 1, graph.inputTokens.length - 1]);
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
