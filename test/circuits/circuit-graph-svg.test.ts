import assert from "node:assert/strict";
import { test } from "node:test";
import { edgeLabel, nodeLabel } from "../../src/circuits/graph.ts";
import { circuitGraphSvg } from "../../src/viz/circuit-graph.ts";

const edges = [
  { name: "input->a1.h0<q>", parent: "input", child: "a1.h0", input: "q" as const, score: 1 },
  { name: "a0.h2->a1.h0<k>", parent: "a0.h2", child: "a1.h0", input: "k" as const, score: -0.5 },
  { name: "m0->a1.h0<v>", parent: "m0", child: "a1.h0", input: "v" as const, score: 0.25, exact: 0.3 },
  { name: "a1.h0->logits", parent: "a1.h0", child: "logits", input: null, score: -0.75 },
];
const svg = circuitGraphSvg({ title: "t", nLayers: 2, scoreLabel: "test score", edges });

/** The drawn edge named (in the graph's names) `name`: the drawing carries the report's names. */
function edgeAttrs(name: string): Record<string, string> {
  const esc = edgeLabel(name).replace(/</g, "&lt;").replace(/>/g, "&gt;");
  const m = new RegExp(
    `<path class="cs-edge" data-edge="${esc.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}"([^>]*)>`,
  ).exec(svg);
  assert.ok(m, `edge ${name} drawn`);
  return Object.fromEntries([...m[1].matchAll(/([\w-]+)="([^"]*)"/g)].map((x) => [x[1], x[2]]));
}

function nodeBox(node: string): { x: number; y: number } {
  const m = new RegExp(`data-node="${nodeLabel(node)}"[^>]*><rect x="([\\d.]+)" y="([\\d.]+)"`).exec(svg);
  assert.ok(m, `node ${node} drawn`);
  return { x: Number(m[1]), y: Number(m[2]) };
}

test("circuit graph: width ∝ |score|, colour = sign, q/k/v enter at their own port with their own dash", () => {
  const w = (n: string) => Number(edgeAttrs(n)["stroke-width"]);
  // width = 0.6 + 5.4 |score| / max|score|: proportional above the floor
  assert.ok(Math.abs(w("input->a1.h0<q>") - 6) < 0.01);
  assert.ok(Math.abs(w("a0.h2->a1.h0<k>") - (0.6 + 2.7)) < 0.01);
  assert.ok(Math.abs(w("m0->a1.h0<v>") - (0.6 + 1.35)) < 0.01);
  const pos = edgeAttrs("input->a1.h0<q>").stroke;
  const neg = edgeAttrs("a0.h2->a1.h0<k>").stroke;
  assert.notEqual(pos, neg);
  assert.equal(edgeAttrs("m0->a1.h0<v>").stroke, pos);
  assert.equal(edgeAttrs("a1.h0->logits").stroke, neg);
  assert.equal(edgeAttrs("input->a1.h0<q>")["stroke-dasharray"], undefined);
  const dashes = new Set([
    edgeAttrs("a0.h2->a1.h0<k>")["stroke-dasharray"],
    edgeAttrs("m0->a1.h0<v>")["stroke-dasharray"],
  ]);
  assert.equal(dashes.size, 2, "k and v dashed differently");
  // Each path ends at its port on the child's top edge: q left, k middle, v right.
  const head = nodeBox("a1.h0");
  const end = (n: string) => edgeAttrs(n).d.trim().split(" ").at(-1)?.split(",").map(Number) as number[];
  const [qx, qy] = end("input->a1.h0<q>");
  const [kx] = end("a0.h2->a1.h0<k>");
  const [vx] = end("m0->a1.h0<v>");
  assert.equal(qy, head.y);
  assert.ok(qx < kx && kx < vx, `ports ${qx} < ${kx} < ${vx}`);
  // Layers run top to bottom: input above layer 0 above layer 1 above logits.
  assert.ok(nodeBox("input").y < nodeBox("a0.h2").y && nodeBox("a0.h2").y < nodeBox("m0").y);
  assert.ok(nodeBox("m0").y < head.y && head.y < nodeBox("logits").y);
  // Hover text: the score, and the exact score where computed.
  assert.match(svg, /MLP0-&gt;L1H0&lt;v&gt;: score 0\.25, exact 0\.3/);
  assert.match(svg, /input-&gt;L1H0&lt;q&gt;: score 1<\/title>/);
});

test("circuit graph: heads are named L1H0 and MLPs MLP0, as in every report; never by the edge graph's a1.h0 / m0", () => {
  const labels = [...svg.matchAll(/<text[^>]*text-anchor="middle" fill="#111">([^<]*)<\/text>/g)].map(
    (m) => m[1],
  );
  assert.deepEqual(labels.sort(), ["L0H2", "L1H0", "MLP0", "input", "logits"]);
  assert.doesNotMatch(svg, /a\d+\.h\d+/);
  assert.doesNotMatch(svg, /\bm\d+\b/);
});
