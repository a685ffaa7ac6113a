/**
 * Edge circuits on a parallel-residual GPT-NeoX (LayerNorm, partial rotary, GELU): a layer's MLP reads the
 * block's input, so it has no edges from that layer's heads; the edge-masked pass reproduces the clean and
 * corrupted runs, removing an MLP edge equals patching that MLP's input with hooks, and EAP is the
 * derivative of the exact score.
 */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { CircuitTask } from "../../src/circuits/circuit-task.ts";
import { HookedTransformer } from "../../src/model/hooked-transformer.ts";
import type { HookSpec } from "../../src/model/hooks.ts";
import { applyNormAffine, normalizeRows } from "../../src/model/normalization.ts";
import { Tensor } from "../../src/tensor/tensor.ts";
import { mulberry32 } from "../../src/util/random.ts";
import { loadCheckpoint } from "../../src/weights/checkpoint.ts";
import { makeNeoxCheckpoint } from "../helpers/neox-variants.ts";
import { nodeOutput, nodeOutputHooks } from "./node-outputs.ts";

const root = mkdtempSync(join(tmpdir(), "cs-circuit-neox-"));
after(() => rmSync(root, { recursive: true, force: true }));
const { dir } = makeNeoxCheckpoint(root, 0); // parallel residual
const model = HookedTransformer.fromCheckpoint(loadCheckpoint(dir), { backend: "reference" });
const { nLayers: L, dModel: D, dVocab: V } = model.cfg;
assert.equal(model.cfg.parallelResidual, true);

const rng = mulberry32(5);
const clean = [0, 1].map(() => Array.from({ length: 7 }, () => Math.floor(rng() * V)));
const corrupted = clean.map((t) => t.map((x, i) => (i % 2 === 0 && i > 0 ? (x + 17) % V : x)));
const pairs = { clean, corrupted, answer: [3, 5], wrong: [7, 3] };
const task = new CircuitTask(model, pairs);
const { graph } = task;
const [B, P] = [clean.length, clean[0].length];
const rows = B * P;

function modelMetric(tokens: number[][], hooks: HookSpec[] = []): number {
  const logits = model.run(tokens, { logits: "last", fwdHooks: hooks });
  return (
    tokens.reduce(
      (s, _, b) => s + logits.data[b * V + pairs.answer[b]] - logits.data[b * V + pairs.wrong[b]],
      0,
    ) / B
  );
}

test("parallel blocks: a layer's MLP has edges from earlier nodes only, not from its own heads", () => {
  assert.throws(() => graph.edgeIndex("a0.h1->m0"));
  assert.throws(() => graph.edgeIndex("a1.h3->m1"));
  for (const name of ["input->m0", "a0.h2->m1", "m0->m1", "a1.h3->logits", "m0->a1.h0<q>"])
    assert.equal(graph.edge(graph.edgeIndex(name)).name, name);
});

test("every edge kept = the clean run, no edge kept = the corrupted run", () => {
  const c = modelMetric(clean);
  const x = modelMetric(corrupted);
  assert.ok(Math.abs(c - x) > 0.05, `the pairs must differ: ${c} vs ${x}`);
  assert.ok(Math.abs(task.evaluate(new Float32Array(graph.nEdges).fill(1)) - c) < 1e-4);
  assert.ok(Math.abs(task.evaluate(new Float32Array(graph.nEdges)) - x) < 1e-4);
});

test("one MLP edge removed = that MLP's input (resid_pre) shifted by the parent's difference, with hooks", async () => {
  const cache = (tokens: number[][]) => model.runWithCache(tokens, { namesFilter: nodeOutputHooks }).cache;
  const [cleanCache, corrCache] = [cache(clean), cache(corrupted)];
  const names = ["input->m0", "input->m1", "a0.h2->m1", "m0->m1"];
  const exact = await task.exactScores(names.map((n) => graph.edgeIndex(n)));
  names.forEach((n, i) => {
    const e = graph.edge(graph.edgeIndex(n));
    const l = graph.childOfEdge(graph.edgeIndex(n)).layer;
    const a = nodeOutput(model, corrCache, e.parent);
    const b = nodeOutput(model, cleanCache, e.parent);
    let seen = new Float32Array(0);
    const want =
      modelMetric(clean, [
        [
          `blocks.${l}.hook_resid_pre`,
          (t) => {
            seen = t.data.slice();
          },
        ],
        [
          `blocks.${l}.ln2.hook_normalized`,
          (t) => {
            const x = seen.map((v, j) => v + a[j] - b[j]);
            const y = normalizeRows(x, rows, D, model.cfg.lnEps, "layernorm").y;
            return new Tensor(applyNormAffine(y, model.weights.blocks[l].ln2, D), t.shape);
          },
        ],
      ]) - task.baseline.clean;
    assert.ok(Math.abs(want) > 1e-4, `${n} must matter`);
    assert.ok(Math.abs(exact[i] - want) < 2e-4, `${n}: exact ${exact[i]} vs hooks ${want}`);
  });
});

test("EAP is the derivative of the exact score (LayerNorm, partial rotary, parallel residual)", async () => {
  const eap = await task.gradientScores(1);
  const byMagnitude = [...eap.keys()].sort((a, b) => Math.abs(eap[b]) - Math.abs(eap[a]));
  const pick = (pred: (e: number) => boolean, n: number) => byMagnitude.filter(pred).slice(0, n);
  const inputOf = (e: number) => graph.childOfEdge(e).input;
  const edges = [
    ...pick((e) => graph.childOfEdge(e).kind === "logits", 2),
    ...pick((e) => graph.childOfEdge(e).kind === "mlp", 2),
    ...(["q", "k", "v"] as const).flatMap((c) => pick((e) => inputOf(e) === c, 2)),
  ];
  const maxScore = Math.abs(eap[byMagnitude[0]]);
  const eps = 1e-2;
  for (const e of edges) {
    const mask = new Float32Array(graph.nEdges).fill(1);
    mask[e] = 1 - eps;
    const down = task.evaluate(mask);
    mask[e] = 1 + eps;
    const fd = (down - task.evaluate(mask)) / (2 * eps);
    assert.ok(
      Math.abs(fd - eap[e]) < 1e-3 * maxScore + 2e-3 * Math.abs(eap[e]),
      `${graph.edge(e).name}: ${fd} vs ${eap[e]}`,
    );
  }
  assert.equal(L, 2);
});
