/** A front-end graph from outside (serve --graph, a page) is checked before anything is drawn. */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { checkFrontEndGraph, readFrontEndGraph } from "../../src/graphs/front-end-check.ts";
import type { FrontEndGraph } from "../../src/graphs/graph-files.ts";
import { renderGraphPage } from "../../src/viz/graph-page.ts";
import { demoFrontEndGraph } from "../helpers/front-end-graph.ts";

const GOOD = demoFrontEndGraph(5);
const clone = (): FrontEndGraph => structuredClone(GOOD);

test("a graph written by frontEndGraph passes unchanged; missing qParams get the writer's defaults", () => {
  assert.deepEqual(checkFrontEndGraph(clone()), GOOD);
  const { qParams: _, ...bare } = clone();
  assert.deepEqual(checkFrontEndGraph(bare).qParams, GOOD.qParams);
});

test("an id given to two nodes keeps the later one (as circuit-tracer's viewer) and says so; pins may be one string", () => {
  const g = clone();
  const later = { ...g.nodes[0], activation: 123 };
  const notes: string[] = [];
  const out = checkFrontEndGraph({ ...g, nodes: [...g.nodes, later] }, "g.json", notes);
  assert.equal(out.nodes.length, GOOD.nodes.length);
  assert.equal(out.nodes.filter((n) => n.node_id === later.node_id).length, 1);
  assert.equal(out.nodes.find((n) => n.node_id === later.node_id)?.activation, 123);
  assert.equal(notes.length, 1);
  assert.match(notes[0], new RegExp(`"${later.node_id}" is given to two nodes`));
  const ids = [g.nodes[1].node_id, g.nodes[2].node_id];
  assert.deepEqual(
    checkFrontEndGraph({ ...g, qParams: { ...g.qParams, pinnedIds: ids.join(",") } }).qParams.pinnedIds,
    ids,
  );
});

const BROKEN: [string, (g: FrontEndGraph) => unknown, RegExp][] = [
  ["not an object", () => [1, 2], /not a JSON object/],
  ["no metadata", (g) => ({ ...g, metadata: undefined }), /no metadata object/],
  ["no prompt tokens", (g) => ({ ...g, metadata: { ...g.metadata, prompt_tokens: "ab" } }), /prompt_tokens/],
  ["no nodes", (g) => ({ ...g, nodes: [] }), /no nodes/],
  [
    "position outside the prompt",
    (g) => ({
      ...g,
      nodes: g.nodes.map((n, i) => (i === 0 ? { ...n, ctx_idx: g.metadata.prompt_tokens.length } : n)),
    }),
    /outside the 8 prompt tokens/,
  ],
  [
    "a layer that is not a number",
    (g) => ({ ...g, nodes: g.nodes.map((n, i) => (i === 0 ? { ...n, layer: "x" } : n)) }),
    /layer "x", not a whole number/,
  ],
  [
    "a link to no node",
    (g) => ({ ...g, links: [...g.links, { source: "nope", target: g.nodes[0].node_id, weight: 1 }] }),
    /source "nope" is not a node/,
  ],
  [
    "a weight that is not a number",
    (g) => ({ ...g, links: [{ ...g.links[0], weight: "1" }] }),
    /weight 1, not a finite number/,
  ],
  ["a pin of no node", (g) => ({ ...g, qParams: { ...g.qParams, pinnedIds: ["nope"] } }), /pinnedIds/],
  [
    "a supernode without members",
    (g) => ({ ...g, qParams: { ...g.qParams, supernodes: [["lonely"]] } }),
    /supernodes is not a list of \[name, \.\.\.node ids/,
  ],
];

for (const [what, breakIt, message] of BROKEN) {
  test(`refused with the problem and the fix: ${what}`, () => {
    assert.throws(
      () => checkFrontEndGraph(breakIt(clone()), "g.json"),
      (err: Error) => {
        assert.match(err.message, /^g\.json: /);
        assert.match(err.message, message);
        assert.match(err.message, /circuitscope graph --out graph\.json/);
        return true;
      },
    );
    // The page is never rendered from such a graph.
    assert.throws(() => renderGraphPage(breakIt(clone())), message);
  });
}

test("readFrontEndGraph: a missing file and a file that is not JSON are refused naming the file", () => {
  const dir = mkdtempSync(join(tmpdir(), "cs-fe-check-"));
  try {
    assert.throws(
      () => readFrontEndGraph(join(dir, "none.json")),
      /none\.json cannot be read \(no such file\)/,
    );
    writeFileSync(join(dir, "bad.json"), "{ nodes: ");
    assert.throws(() => readFrontEndGraph(join(dir, "bad.json")), /bad\.json: not JSON/);
    writeFileSync(join(dir, "good.json"), JSON.stringify(GOOD));
    assert.deepEqual(readFrontEndGraph(join(dir, "good.json")), GOOD);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
