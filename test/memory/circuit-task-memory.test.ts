/**
 * A circuit task keeps, per batch of pairs, the reference (corrupted) run that every masked run reads, and
 * not the clean run's node differences, which are as large and are recomputed where they are read.
 */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { CircuitTask } from "../../src/circuits/circuit-task.ts";
import { findCircuit } from "../../src/circuits/find-circuit.ts";
import { HookedTransformer } from "../../src/model/hooked-transformer.ts";
import { collectGarbage } from "../../src/util/collect-garbage.ts";
import { makeRandomCheckpoint } from "../../src/weights/checkpoint.ts";
import { gpt2Config } from "../../src/weights/families/gpt2.ts";

const root = mkdtempSync(join(tmpdir(), "cs-circuit-task-memory-"));
after(() => rmSync(root, { recursive: true, force: true }));

// Small weights (~0.2 MB), large runs: 40 pairs of 32 tokens, one batch, N = 40·32·64 values per node.
const shape = { nLayers: 4, nHeads: 4, dModel: 64, dHead: 16, dMlp: 128, nCtx: 64, dVocab: 300 };
const dir = join(root, "m");
makeRandomCheckpoint(dir, gpt2Config({ ...shape, lnEps: 1e-5, act: "gelu_new" }), { seed: 5 });
const PAIRS = 40;
const P = 32;

test("a circuit task holds its reference run, not a second node-sized run per batch", async () => {
  const model = await HookedTransformer.fromPretrained(dir, { backend: "reference" });
  try {
    const clean = Array.from({ length: PAIRS }, (_, i) =>
      Array.from({ length: P }, (_, p) => (i * 7 + p) % 300),
    );
    const corrupted = clean.map((t) => t.map((x, p) => (p === 3 ? (x + 11) % 300 : x)));
    const pairs = { clean, corrupted, answer: clean.map(() => 1), wrong: clean.map(() => 2) };
    model.run([clean[0]]); // the kernels' lazily built state, not the task's
    collectGarbage();
    const before = process.memoryUsage().arrayBuffers;
    const task = new CircuitTask(model, pairs);
    collectGarbage();
    const grown = process.memoryUsage().arrayBuffers - before;
    const nNodes = task.graph.nodes.length;
    const N = PAIRS * P * shape.dModel;
    const nodeRunBytes = 4 * nNodes * N;
    // Reference outputs, its 2L+1 residuals, the clean and corrupted inputs.
    const referenceBytes = nodeRunBytes + 4 * (2 * shape.nLayers + 1 + 2) * N;
    assert.ok(grown >= referenceBytes, `grew ${grown} B, below the reference's own ${referenceBytes} B`);
    assert.ok(
      grown < referenceBytes + nodeRunBytes / 2,
      `grew ${(grown / 2 ** 20).toFixed(2)} MB; the reference is ${(referenceBytes / 2 ** 20).toFixed(2)} MB ` +
        `and a second node-sized run ${(nodeRunBytes / 2 ** 20).toFixed(2)} MB`,
    );
    // Scores read the clean run (recomputed): removing every edge gives the corrupted metric.
    assert.ok(Math.abs(task.evaluate(new Float32Array(task.graph.nEdges)) - task.baseline.corrupted) < 1e-4);
  } finally {
    model.dispose();
  }
});

test("a circuit's result holds each of its many edges in a small fixed-shape object", async () => {
  // 24 layers of 16 heads (d_model 32): 230k edges from a model of a few hundred KB.
  const wide = { nLayers: 24, nHeads: 16, dModel: 32, dHead: 2, dMlp: 32, nCtx: 8, dVocab: 50 };
  const wideDir = join(root, "wide");
  makeRandomCheckpoint(wideDir, gpt2Config({ ...wide, lnEps: 1e-5, act: "gelu_new" }), { seed: 6 });
  const model = await HookedTransformer.fromPretrained(wideDir, { backend: "reference" });
  try {
    const task = new CircuitTask(model, {
      clean: [[1, 2, 3]],
      corrupted: [[1, 4, 3]],
      answer: [5],
      wrong: [6],
    });
    collectGarbage();
    const before = process.memoryUsage().heapUsed;
    const r = await findCircuit(task, { method: "eap", topN: 10, compareTop: 3 });
    collectGarbage();
    const perEdge = (process.memoryUsage().heapUsed - before) / r.edges.length;
    assert.equal(r.edges.length, task.graph.nEdges);
    assert.ok(task.graph.nEdges > 200_000);
    // Name, ends, input and score: about 150 bytes of heap an edge; spread objects took about 400.
    assert.ok(perEdge < 250, `${perEdge.toFixed(0)} bytes of heap per edge of the result`);
    assert.equal(r.edges.filter((e) => e.exact !== undefined).length, 3);
  } finally {
    model.dispose();
  }
});
