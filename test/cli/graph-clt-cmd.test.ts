/**
 * `graph --transcoders DIR` with a cross-layer transcoder directory (circuit-tracer's files) on stories260k:
 * the raw files hold the graph the library builds in-process over the same CLT, and --check runs.
 */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { attributeGraph } from "../../src/graphs/attribute-graph.ts";
import { graphNodes } from "../../src/graphs/attribution-graph.ts";
import { loadTranscoderSet, writeTranscoderSet } from "../../src/graphs/transcoder-set.ts";
import { HookedTransformer } from "../../src/model/hooked-transformer.ts";
import { runCli } from "../helpers/cli.ts";
import { randomCrossLayerTranscoder } from "../helpers/random-transcoder.ts";
import { readRawGraph } from "../helpers/raw-graph.ts";

const root = mkdtempSync(join(tmpdir(), "circuitscope-graph-clt-"));
after(() => rmSync(root, { recursive: true, force: true }));
const PROMPT = "Once upon a time, there was a little girl";

test("graph --transcoders accepts a CLT directory and writes the library's graph over that CLT", async () => {
  const model = await HookedTransformer.fromPretrained("stories260k");
  const { nLayers, dModel } = model.cfg;
  const clt = join(root, "clt");
  await writeTranscoderSet(
    clt,
    randomCrossLayerTranscoder({
      layers: nLayers,
      dModel,
      dTc: 12,
      seed: 9,
      jump: false,
      modelName: "stories260k",
    }),
  );
  const raw = join(root, "raw");
  const r = await runCli([
    "graph",
    "--model",
    "stories260k",
    "--transcoders",
    clt,
    "--prompt",
    PROMPT,
    "--target",
    " was",
    "--raw",
    raw,
    "--json",
    "--check",
    "2",
  ]);
  assert.equal(r.code, 0, r.stderr);
  const json = JSON.parse(r.stdout);
  const set = await loadTranscoderSet(clt);
  assert.equal(set.crossLayer, true);
  const { graph } = await attributeGraph(model, model.toTokens(PROMPT), set, {
    targets: [model.toSingleToken(" was")],
  });
  assert.equal(json.n_features, graph.features.length);
  assert.ok(graph.features.length > 10, `${graph.features.length} features`);
  assert.equal(json.check.length, 2);
  const written = readRawGraph(raw);
  assert.deepEqual(
    written.nodeIds,
    graphNodes(graph).map((n) => n.node_id),
  );
  assert.deepEqual(written.adjacency, graph.adjacency);
  model.dispose();
});
