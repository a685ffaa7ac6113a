import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { CircuitTask } from "../../src/circuits/circuit-task.ts";
import type { ActivationCache } from "../../src/model/activation-cache.ts";
import { HookedTransformer } from "../../src/model/hooked-transformer.ts";
import type { HookSpec } from "../../src/model/hooks.ts";
import { applyNormAffine, normalizeRows } from "../../src/model/normalization.ts";
import { Rotary } from "../../src/model/rotary.ts";
import { Tensor } from "../../src/tensor/tensor.ts";
import { mulberry32 } from "../../src/util/random.ts";
import { loadCheckpoint, makeRandomCheckpoint } from "../../src/weights/checkpoint.ts";
import type { ModelConfig } from "../../src/weights/config.ts";
import { nodeOutput as nodeOf, nodeOutputHooks } from "./node-outputs.ts";

// A small Llama-family model: RMSNorm, rotary, 4 query heads sharing 2 key/value heads, gated SiLU MLP.
const cfg: ModelConfig = {
  nLayers: 2,
  nHeads: 4,
  dModel: 32,
  dHead: 8,
  dMlp: 48,
  nCtx: 64,
  dVocab: 96,
  lnEps: 1e-5,
  act: "silu",
  modelType: "llama",
  normalization: "rmsnorm",
  positions: "rotary",
  rotary: { theta: 10000, dim: 8, scaling: null },
  nKvHeads: 2,
  qkvBias: false,
  outBias: false,
  gatedMlp: true,
  mlpBias: false,
  tiedEmbeddings: false,
  slidingWindow: null,
  parallelResidual: false,
};
const dir = mkdtempSync(join(tmpdir(), "cs-circuit-llama-"));
after(() => rmSync(dir, { recursive: true, force: true }));
makeRandomCheckpoint(dir, cfg, { seed: 11, std: 0.25 });
const model = HookedTransformer.fromCheckpoint(loadCheckpoint(dir), { backend: "reference" });
const { nLayers: L, nHeads: H, dModel: D, dHead: dh } = model.cfg;
const group = H / model.cfg.nKvHeads;

const rng = mulberry32(5);
const clean = [0, 1].map(() => Array.from({ length: 7 }, () => Math.floor(rng() * cfg.dVocab)));
const corrupted = clean.map((t) => t.map((x, i) => (i % 2 === 0 && i > 0 ? (x + 17) % cfg.dVocab : x)));
const pairs = { clean, corrupted, answer: [3, 5], wrong: [7, 3] };
const task = new CircuitTask(model, pairs);
const { graph } = task;
const [B, P] = [clean.length, clean[0].length];
const rows = B * P;

function modelMetric(tokens: number[][], hooks: HookSpec[] = []): number {
  const logits = model.run(tokens, { logits: "last", fwdHooks: hooks });
  const V = model.cfg.dVocab;
  return (
    tokens.reduce(
      (s, _, b) => s + logits.data[b * V + pairs.answer[b]] - logits.data[b * V + pairs.wrong[b]],
      0,
    ) / B
  );
}

test("Llama family: every edge kept = the clean run, no edge kept = the corrupted run", async () => {
  const c = modelMetric(clean);
  const x = modelMetric(corrupted);
  assert.ok(Math.abs(c - x) > 0.05, `the pairs must differ: ${c} vs ${x}`);
  assert.ok(Math.abs(task.evaluate(new Float32Array(graph.nEdges).fill(1)) - c) < 1e-4);
  assert.ok(Math.abs(task.evaluate(new Float32Array(graph.nEdges)) - x) < 1e-4);
});

const withResult = (tokens: number[][]) => model.runWithCache(tokens, { namesFilter: nodeOutputHooks }).cache;
const cleanCache = withResult(clean);
const corrCache = withResult(corrupted);

const nodeOutput = (cache: ActivationCache, node: string) => nodeOf(model, cache, node);

/** The metric with one child input shifted by (corrupted − clean) of one parent, with hooks only. */
function patchedByHooks(edgeName: string): number {
  const e = graph.edge(graph.edgeIndex(edgeName));
  const child = graph.childOfEdge(graph.edgeIndex(edgeName));
  const delta = nodeOutput(corrCache, e.parent).map((x, i) => x - nodeOutput(cleanCache, e.parent)[i]);
  const norm = (x: Float32Array, ln: Parameters<typeof applyNormAffine>[1]) =>
    applyNormAffine(
      normalizeRows(
        x.map((v, i) => v + delta[i]),
        rows,
        D,
        model.cfg.lnEps,
        "rmsnorm",
      ).y,
      ln,
      D,
    );
  const seen: Record<string, Float32Array> = {};
  const keep = (name: string): HookSpec => [
    name,
    (t) => {
      seen[name] = t.data.slice();
    },
  ];
  if (child.kind === "mlp") {
    const l = child.layer;
    return modelMetric(clean, [
      keep(`blocks.${l}.hook_resid_mid`),
      [
        `blocks.${l}.ln2.hook_normalized`,
        (t) => new Tensor(norm(seen[`blocks.${l}.hook_resid_mid`], model.weights.blocks[l].ln2), t.shape),
      ],
    ]);
  }
  if (child.kind === "logits") {
    return modelMetric(clean, [
      keep(`blocks.${L - 1}.hook_resid_post`),
      [
        "ln_final.hook_normalized",
        (t) => new Tensor(norm(seen[`blocks.${L - 1}.hook_resid_post`], model.weights.lnFinal), t.shape),
      ],
    ]);
  }
  const l = child.layer;
  const h = child.head as number;
  const w = model.weights.blocks[l];
  /** This head's own q, k or v [rows, dh] from its shifted input (before any rotation). */
  const project = (which: "q" | "k" | "v") => {
    const y = norm(seen[`blocks.${l}.hook_resid_pre`], w.ln1);
    const src = which === "q" ? h : Math.floor(h / group);
    const W = { q: w.W_Q, k: w.W_K, v: w.W_V }[which].data;
    const bias = { q: w.b_Q, k: w.b_K, v: w.b_V }[which].data;
    const out = new Float32Array(rows * dh);
    for (let r = 0; r < rows; r++)
      for (let j = 0; j < dh; j++) {
        let s = bias[src * dh + j];
        for (let d = 0; d < D; d++) s += y[r * D + d] * W[(src * D + d) * dh + j];
        out[r * dh + j] = s;
      }
    return out;
  };
  const hooks: HookSpec[] = [
    keep(`blocks.${l}.hook_resid_pre`),
    keep(`blocks.${l}.attn.hook_rot_q`),
    keep(`blocks.${l}.attn.hook_pattern`),
  ];
  if (child.input === "q") {
    hooks.push([
      `blocks.${l}.attn.hook_q`,
      (t) => {
        const q = project("q");
        const out = t.data.slice();
        for (let r = 0; r < rows; r++) out.set(q.subarray(r * dh, (r + 1) * dh), (r * H + h) * dh);
        return new Tensor(out, t.shape);
      },
    ]);
  } else if (child.input === "k") {
    // Only this query head sees the shifted key: recompute its scores.
    hooks.push([
      `blocks.${l}.attn.hook_attn_scores`,
      (t) => {
        const k = new Rotary(model.cfg.rotary as NonNullable<ModelConfig["rotary"]>).rotate(project("k"), {
          batch: B,
          pos: P,
          heads: 1,
          dHead: dh,
          firstPos: 0,
        });
        const q = seen[`blocks.${l}.attn.hook_rot_q`];
        const out = t.data.slice();
        for (let b = 0; b < B; b++)
          for (let i = 0; i < P; i++)
            for (let j = 0; j <= i; j++) {
              let s = 0;
              for (let e = 0; e < dh; e++) s += q[((b * P + i) * H + h) * dh + e] * k[(b * P + j) * dh + e];
              out[((b * H + h) * P + i) * P + j] = s / Math.sqrt(dh);
            }
        return new Tensor(out, t.shape);
      },
    ]);
  } else {
    // Only this query head reads the shifted value: recompute its z.
    hooks.push([
      `blocks.${l}.attn.hook_z`,
      (t) => {
        const v = project("v");
        const pat = seen[`blocks.${l}.attn.hook_pattern`];
        const out = t.data.slice();
        for (let b = 0; b < B; b++)
          for (let i = 0; i < P; i++)
            for (let e = 0; e < dh; e++) {
              let s = 0;
              for (let j = 0; j < P; j++) s += pat[((b * H + h) * P + i) * P + j] * v[(b * P + j) * dh + e];
              out[((b * P + i) * H + h) * dh + e] = s;
            }
        return new Tensor(out, t.shape);
      },
    ]);
  }
  return modelMetric(clean, hooks);
}

test("Llama family: one edge removed = patching that one (ungrouped) head input, with hooks", async () => {
  const names = [
    "input->a0.h1<q>",
    "input->a0.h2<k>",
    "input->a0.h3<v>",
    "a0.h0->a1.h1<k>",
    "m0->a1.h2<v>",
    "a0.h3->a1.h0<q>",
    "a0.h2->m0",
    "a1.h3->m1",
    "m0->logits",
    "a1.h1->logits",
  ];
  const exact = await task.exactScores(names.map((n) => graph.edgeIndex(n)));
  let moved = 0;
  names.forEach((n, i) => {
    const want = patchedByHooks(n) - task.baseline.clean;
    if (Math.abs(want) > 1e-3) moved++;
    assert.ok(Math.abs(exact[i] - want) < 2e-4, `${n}: exact ${exact[i]} vs hooks ${want}`);
  });
  assert.ok(moved >= 5, `most of these edges must matter (${moved} did)`);
});

test("Llama family: EAP is the derivative of the exact score (RMSNorm, rotary, grouped heads, gated MLP)", async () => {
  const eap = await task.gradientScores(1);
  const byMagnitude = [...eap.keys()].sort((a, b) => Math.abs(eap[b]) - Math.abs(eap[a]));
  const pick = (pred: (e: number) => boolean, n: number) => byMagnitude.filter(pred).slice(0, n);
  const inputOf = (e: number) => graph.childOfEdge(e).input;
  const edges = [
    ...pick((e) => graph.childOfEdge(e).kind === "logits", 2),
    ...pick((e) => graph.childOfEdge(e).kind === "mlp", 2),
    ...pick((e) => inputOf(e) === "q", 2),
    ...pick((e) => inputOf(e) === "k", 2),
    ...pick((e) => inputOf(e) === "v", 2),
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
});
