/** The node list: circuit-tracer's matrix order and its front end's node ids, derived from a graph's parts. */
import assert from "node:assert/strict";
import { test } from "node:test";
import {
  type AttributionGraph,
  graphNodes,
  nodeRanges,
  sortFeatures,
} from "../../src/graphs/attribution-graph.ts";

const graph: AttributionGraph = {
  nLayers: 2,
  inputTokens: [1, 50, 60],
  features: sortFeatures([
    { layer: 1, pos: 0, feature: 4, activation: 0.5 },
    { layer: 0, pos: 2, feature: 9, activation: 2 },
    { layer: 0, pos: 2, feature: 3, activation: 1 },
    { layer: 0, pos: 1, feature: 7, activation: 3 },
  ]),
  logitTokens: [42, 17],
  logitProbabilities: [0.7, 0.2],
  adjacency: new Float32Array((4 + 6 + 3 + 2) ** 2),
};

test("nodes come in matrix order: features by (layer, pos, feature), errors layer-major, tokens, logits", () => {
  const nodes = graphNodes(graph);
  assert.deepEqual(
    nodes.map((n) => n.node_id),
    [
      "0_7_1",
      "0_3_2",
      "0_9_2",
      "1_4_0",
      "0_0_0",
      "0_0_1",
      "0_0_2",
      "0_1_0",
      "0_1_1",
      "0_1_2",
      "E_1_0",
      "E_50_1",
      "E_60_2",
      "3_42_2",
      "3_17_2",
    ],
  );
  const r = nodeRanges(graph);
  assert.deepEqual([r.nFeatures, r.errorStart, r.tokenStart, r.logitStart, r.nNodes], [4, 4, 10, 13, 15]);
  assert.deepEqual(nodes[0], {
    node_id: "0_7_1",
    feature_type: "cross layer transcoder",
    layer: "0",
    ctx_idx: 1,
    feature: 7,
    activation: 3,
  });
  assert.deepEqual(
    nodes.slice(9).map((n) => [n.feature_type, n.layer, n.ctx_idx, n.feature, n.activation]),
    [
      ["mlp reconstruction error", "1", 2, -1, null],
      ["embedding", "E", 0, 0, null],
      ["embedding", "E", 1, 1, null],
      ["embedding", "E", 2, 2, null],
      ["logit", "3", 2, 42, null],
      ["logit", "3", 2, 17, null],
    ],
  );
});

test("a repeated or out-of-range feature is refused by name", () => {
  const repeated = { ...graph, features: [graph.features[0], graph.features[0]] };
  assert.throws(() => graphNodes({ ...repeated, adjacency: new Float32Array(13 ** 2) }), /feature 1 is not/);
  const outside = { ...graph, features: [{ layer: 2, pos: 0, feature: 0, activation: 1 }] };
  assert.throws(() => graphNodes({ ...outside, adjacency: new Float32Array(12 ** 2) }), /out of range/);
});
