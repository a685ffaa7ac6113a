/**
 * The graph's files: --raw (nodes.json + adjacency.safetensors, unpruned, read back) and the front-end JSON
 * (every field and type of circuit-tracer's schema; links are exactly the kept edges, weights the adjacency).
 */
import assert from "node:assert/strict";
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { graphNodes, nodeRanges } from "../../src/graphs/attribution-graph.ts";
import { frontEndGraph, writeFrontEndGraph, writeRawGraph } from "../../src/graphs/graph-files.ts";
import { pruneGraph } from "../../src/graphs/prune.ts";
import { TEMP_MARK } from "../../src/util/atomic-write.ts";
import { SafetensorsReader } from "../../src/weights/safetensors.ts";
import { randomGraph } from "../helpers/random-graph.ts";

const graph = randomGraph(5, 3, 4, 24, 3);
const promptTokens = ["<s>", " Once", "\n", " a"];
const logitTokens = [" she", " he", "\t"];

type Kind = "string" | "number" | "integer" | "boolean" | "null";
type Schema = Kind | Kind[] | { array: Schema } | { object: Record<string, Schema> };

/** A small JSON-schema check: exactly these keys, each of these types. */
function check(value: unknown, schema: Schema, where: string): void {
  if (typeof schema === "string" || Array.isArray(schema)) {
    const kinds = ([] as Kind[]).concat(schema);
    const ok = kinds.some((k) =>
      k === "null"
        ? value === null
        : k === "integer"
          ? Number.isInteger(value)
          : k === "number"
            ? typeof value === "number" && Number.isFinite(value)
            : typeof value === k,
    );
    assert.ok(ok, `${where}: ${JSON.stringify(value)} is not ${kinds.join(" | ")}`);
  } else if ("array" in schema) {
    assert.ok(Array.isArray(value), `${where} is not an array`);
    (value as unknown[]).forEach((v, i) => {
      check(v, schema.array, `${where}[${i}]`);
    });
  } else {
    assert.ok(
      value !== null && typeof value === "object" && !Array.isArray(value),
      `${where} is not an object`,
    );
    assert.deepEqual(
      Object.keys(value as object).sort(),
      Object.keys(schema.object).sort(),
      `${where}: keys`,
    );
    for (const [k, s] of Object.entries(schema.object))
      check((value as Record<string, unknown>)[k], s, `${where}.${k}`);
  }
}

const FRONT_END_SCHEMA: Schema = {
  object: {
    metadata: {
      object: {
        slug: "string",
        scan: "string",
        transcoder_list: { array: "string" },
        prompt_tokens: { array: "string" },
        prompt: "string",
        node_threshold: "number",
        schema_version: "integer",
      },
    },
    qParams: {
      object: {
        pinnedIds: { array: "string" },
        supernodes: { array: { array: "string" } },
        linkType: "string",
        clickedId: "string",
        sg_pos: "string",
      },
    },
    nodes: {
      array: {
        object: {
          node_id: "string",
          feature: "integer",
          layer: "string",
          ctx_idx: "integer",
          feature_type: "string",
          token_prob: "number",
          is_target_logit: "boolean",
          run_idx: "integer",
          reverse_ctx_idx: "integer",
          jsNodeId: "string",
          clerp: "string",
          influence: ["number", "null"],
          activation: ["number", "null"],
        },
      },
    },
    links: { array: { object: { source: "string", target: "string", weight: "number" } } },
  },
};

const options = {
  slug: "test-graph",
  scan: "random-transcoders",
  prompt: "<s> Once\n a",
  promptTokens,
  logitTokens,
  nodeThreshold: 0.6,
};

test("front-end JSON: every field has circuit-tracer's name and type; values follow the node kinds", () => {
  const pruned = pruneGraph(graph, { nodeThreshold: 0.6, edgeThreshold: 0.9 });
  const out = frontEndGraph(graph, pruned, options);
  const dir = mkdtempSync(join(tmpdir(), "graph-json-"));
  try {
    writeFrontEndGraph(join(dir, "graph.json"), out);
    const read = JSON.parse(readFileSync(join(dir, "graph.json"), "utf8"));
    check(read, FRONT_END_SCHEMA, "graph");
    assert.deepEqual(read.metadata.prompt_tokens, ["<s>", " Once", "⏎", " a"]);
    assert.equal(read.metadata.node_threshold, 0.6);
    assert.deepEqual(read.qParams, {
      pinnedIds: [],
      supernodes: [],
      linkType: "both",
      clickedId: "",
      sg_pos: "",
    });
    const types = new Set(read.nodes.map((n: { feature_type: string }) => n.feature_type));
    assert.deepEqual(
      [...types].sort(),
      ["cross layer transcoder", "embedding", "logit", "mlp reconstruction error"],
      "every kind of node survives this pruning",
    );
    const logits = read.nodes.filter((n: { feature_type: string }) => n.feature_type === "logit");
    assert.deepEqual(
      logits.map((n: { is_target_logit: boolean; token_prob: number; clerp: string; jsNodeId: string }) => [
        n.is_target_logit,
        n.token_prob,
        n.clerp,
        n.jsNodeId,
      ]),
      graph.logitTokens.map((t, k) => [
        k === 0,
        graph.logitProbabilities[k],
        `Output "${[" she", " he", "→"][k]}" (p=${graph.logitProbabilities[k].toFixed(3)})`,
        `L_${t}-3`,
      ]),
    );
    for (const node of read.nodes) {
      if (node.feature_type === "cross layer transcoder") {
        assert.equal(node.jsNodeId, `${node.layer}_${node.feature}-0`);
        assert.equal(typeof node.activation, "number");
      }
      if (node.feature_type === "embedding")
        assert.equal(node.jsNodeId, `E_${graph.inputTokens[node.ctx_idx]}-${node.ctx_idx}`);
      if (node.feature_type !== "cross layer transcoder") assert.equal(node.activation, null);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("front-end JSON: links are the kept edges between kept nodes, each weight the adjacency entry; no node dangles", () => {
  const pruned = pruneGraph(graph, { nodeThreshold: 0.6, edgeThreshold: 0.9 });
  const out = frontEndGraph(graph, pruned, options);
  const raw = graphNodes(graph);
  const index = new Map(raw.map((node, i) => [node.node_id, i]));
  const n = raw.length;
  const expected = new Set<string>();
  for (let t = 0; t < n; t++) {
    for (let s = 0; s < n; s++) {
      if (pruned.edgeMask[t * n + s] && pruned.nodeMask[t] && pruned.nodeMask[s]) expected.add(`${s}>${t}`);
    }
  }
  assert.ok(expected.size > 0 && expected.size < n * n);
  const got = new Set<string>();
  for (const link of out.links) {
    const s = index.get(link.source)!;
    const t = index.get(link.target)!;
    got.add(`${s}>${t}`);
    assert.equal(link.weight, graph.adjacency[t * n + s]);
    assert.notEqual(link.weight, 0);
  }
  assert.deepEqual([...got].sort(), [...expected].sort());
  const ranges = nodeRanges(graph);
  const linked = new Set(out.links.flatMap((l) => [l.source, l.target]));
  for (const node of out.nodes) {
    const i = index.get(node.node_id)!;
    assert.ok(pruned.nodeMask[i], `${node.node_id} was pruned`);
    assert.ok(linked.has(node.node_id) || i >= ranges.tokenStart, `${node.node_id} has no link`);
    if (i < ranges.logitStart) assert.equal(node.influence, pruned.cumulativeScores[i]);
  }
  // every token and logit is listed, in matrix order
  const ids = out.nodes.map((node) => index.get(node.node_id)!);
  assert.deepEqual(
    ids,
    [...ids].sort((a, b) => a - b),
  );
  assert.equal(ids.filter((i) => i >= ranges.tokenStart).length, n - ranges.tokenStart);
});

test("--raw: nodes.json and adjacency.safetensors hold every node and the unpruned matrix; only our own directory is replaced", async () => {
  const dir = mkdtempSync(join(tmpdir(), "graph-raw-"));
  try {
    const out = join(dir, "raw");
    await writeRawGraph(out, graph);
    const nodes = JSON.parse(readFileSync(join(out, "nodes.json"), "utf8"));
    assert.deepEqual(nodes, graphNodes(graph));
    const reader = SafetensorsReader.open(join(out, "adjacency.safetensors"));
    try {
      const n = nodes.length;
      const info = reader.tensors.get("adjacency");
      assert.deepEqual([info?.dtype, info?.shape], ["F32", [n, n]]);
      assert.deepEqual(reader.readFloat32("adjacency"), graph.adjacency);
    } finally {
      reader.close();
    }
    await assert.rejects(writeRawGraph(out, graph), /holds an earlier report: add --overwrite/);
    await writeRawGraph(out, graph, { overwrite: true });
    const mine = join(dir, "mine");
    mkdirSync(mine);
    writeFileSync(join(mine, "notes.txt"), "user's work");
    await assert.rejects(writeRawGraph(mine, graph, { overwrite: true }), /is not a circuitscope report/);
    assert.equal(readFileSync(join(mine, "notes.txt"), "utf8"), "user's work");
    assert.deepEqual(
      readdirSync(dir).filter((f) => f.includes(TEMP_MARK)),
      [],
    );
    assert.ok(existsSync(join(out, "nodes.json")));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
