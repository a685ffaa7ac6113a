import assert from "node:assert/strict";
import { test } from "node:test";
import { CircuitTask } from "../../src/circuits/circuit-task.ts";
import { EdgeGraph, pruneToPaths } from "../../src/circuits/graph.ts";
import { backwardFromCache } from "../../src/gradients/backward.ts";
import { logitDiffMetric } from "../../src/gradients/logit-metric.ts";
import type { ActivationCache } from "../../src/model/activation-cache.ts";
import type { HookSpec } from "../../src/model/hooks.ts";
import { normalizeRows, normBackward } from "../../src/model/normalization.ts";
import { Tensor } from "../../src/tensor/tensor.ts";
import { mulberry32 } from "../../src/util/random.ts";
import { loadFixtureModel, referenceJson } from "../helpers/reference.ts";
import { nodeOutput as nodeOf } from "./node-outputs.ts";

const model = loadFixtureModel({ backend: "reference" });
const P = referenceJson.prompts;
// Two pairs with different answers, so per-pair tokens are exercised.
const pairs = {
  clean: P.clean_tokens,
  corrupted: P.corrupted_tokens,
  answer: [P.answer_token, P.wrong_token],
  wrong: [P.wrong_token, P.answer_token],
};
const task = new CircuitTask(model, pairs);
const { graph } = task;
const { nLayers: L, nHeads: H, dModel: D, dHead: dh } = model.cfg;

/** Mean over pairs of logit(answer) − logit(wrong) at the final position, from the model's own forward. */
function modelMetric(tokens: number[][], hooks: HookSpec[] = []): number {
  const logits = model.run(tokens, { logits: "last", fwdHooks: hooks });
  const V = model.cfg.dVocab;
  let s = 0;
  tokens.forEach((_, b) => {
    s += logits.data[b * V + pairs.answer[b]] - logits.data[b * V + pairs.wrong[b]];
  });
  return s / tokens.length;
}

const all = () => new Float32Array(graph.nEdges).fill(1);

test("the graph has the published names and edge counts", async () => {
  // heads: 3H inputs per layer, each from input + every node of earlier layers; MLPs; logits from every node.
  let expected = 0;
  for (let l = 0; l < L; l++) expected += 3 * H * (1 + l * (H + 1)) + (1 + l * (H + 1) + H);
  expected += 1 + L * (H + 1);
  assert.equal(graph.nEdges, expected);
  assert.equal(graph.edge(graph.edgeIndex("input->a0.h1<k>")).name, "input->a0.h1<k>");
  assert.equal(graph.edge(graph.edgeIndex("a0.h3->m0")).input, null);
  assert.equal(graph.edge(graph.edgeIndex(`m${L - 1}->logits`)).child, "logits");
  assert.throws(() => graph.edgeIndex("a1.h0->a0.h0<q>"), /not an edge/);
  assert.throws(() => graph.edgeIndex("m1->a1.h0<q>"), /not an edge/);
  for (const bad of ["input", "->m0", "input->", "inputm0", "input->a0.h0", "input->m0->logits", "m0->m0"])
    assert.throws(() => graph.edgeIndex(bad), /not an edge/, bad);
  // Every edge's name leads back to it (names are built from the children, looked up by their two ends).
  for (let e = 0; e < graph.nEdges; e++) assert.equal(graph.edgeIndex(graph.edge(e).name), e);
});

test("every edge kept = the clean run, no edge kept = the corrupted run", async () => {
  const clean = modelMetric(pairs.clean);
  const corrupted = modelMetric(pairs.corrupted);
  assert.ok(Math.abs(clean - corrupted) > 0.05, "the pairs must differ for this test to mean anything");
  assert.ok(Math.abs(task.baseline.clean - clean) < 1e-4, `${task.baseline.clean} vs ${clean}`);
  assert.ok(Math.abs(task.baseline.corrupted - corrupted) < 1e-4);
  assert.ok(Math.abs(task.evaluate(all()) - clean) < 1e-4);
  assert.ok(Math.abs(task.evaluate(new Float32Array(graph.nEdges)) - corrupted) < 1e-4);
});

// ---- the straightforward computation with hooks ---------------------------------------------------------

const includeResult = (tokens: number[][]) =>
  model.runWithCache(tokens, { namesFilter: (n) => n.endsWith("attn.hook_result") || !n.includes("scores") })
    .cache;
const cleanCache = includeResult(pairs.clean);
const corrCache = includeResult(pairs.corrupted);

const nodeOutput = (cache: ActivationCache, node: string) => nodeOf(model, cache, node);

/** Metric of the clean run where one child input gets + (corrupted − clean output of the parent), via hooks. */
function patchedByHooks(edgeName: string): number {
  const e = graph.edge(graph.edgeIndex(edgeName));
  const child = graph.childOfEdge(graph.edgeIndex(edgeName));
  const delta = nodeOutput(corrCache, e.parent).map((x, i) => x - nodeOutput(cleanCache, e.parent)[i]);
  const [B, Pn] = [pairs.clean.length, pairs.clean[0].length];
  const rows = B * Pn;
  let residIn: Float32Array | null = null;
  const shifted = (x: Float32Array) =>
    normalizeRows(
      x.map((v, i) => v + delta[i]),
      rows,
      D,
      model.cfg.lnEps,
    ).y;
  const hooks: HookSpec[] = [];
  if (child.kind === "head") {
    const l = child.layer;
    hooks.push([
      `blocks.${l}.hook_resid_pre`,
      (t) => {
        residIn = t.data.slice();
      },
    ]);
    const name = `blocks.${l}.attn.hook_${child.input}`;
    hooks.push([
      name,
      (t) => {
        const y = shifted(residIn as Float32Array);
        const w = model.weights.blocks[l];
        const W = { q: w.W_Q, k: w.W_K, v: w.W_V }[child.input as "q"].data;
        const bias = { q: w.b_Q, k: w.b_K, v: w.b_V }[child.input as "q"].data;
        const h = child.head as number;
        const out = t.data.slice();
        for (let r = 0; r < rows; r++)
          for (let j = 0; j < dh; j++) {
            let s = bias[h * dh + j];
            for (let d = 0; d < D; d++) s += y[r * D + d] * W[(h * D + d) * dh + j];
            out[(r * H + h) * dh + j] = s;
          }
        return new Tensor(out, t.shape);
      },
    ]);
  } else if (child.kind === "mlp") {
    const l = child.layer;
    hooks.push([
      `blocks.${l}.hook_resid_mid`,
      (t) => {
        residIn = t.data.slice();
      },
    ]);
    hooks.push([
      `blocks.${l}.ln2.hook_normalized`,
      (t) => new Tensor(shifted(residIn as Float32Array), t.shape),
    ]);
  } else {
    hooks.push([
      `blocks.${L - 1}.hook_resid_post`,
      (t) => {
        residIn = t.data.slice();
      },
    ]);
    hooks.push(["ln_final.hook_normalized", (t) => new Tensor(shifted(residIn as Float32Array), t.shape)]);
  }
  return modelMetric(pairs.clean, hooks);
}

test("one edge removed = patching that child input alone, computed with hooks", async () => {
  const names = [
    "input->a0.h0<q>",
    "input->a0.h2<k>",
    "input->a0.h1<v>",
    "a0.h3->a1.h2<q>",
    "m0->a2.h1<k>",
    "a1.h0->a2.h3<v>",
    "input->m0",
    "a0.h1->m0",
    "a2.h2->m2",
    "m1->m2",
    "input->logits",
    "a2.h0->logits",
    "m2->logits",
  ];
  const idx = names.map((n) => graph.edgeIndex(n));
  const exact = await task.exactScores(idx);
  let sawChange = false;
  names.forEach((n, i) => {
    const want = patchedByHooks(n) - task.baseline.clean;
    if (Math.abs(want) > 1e-3) sawChange = true;
    // Also the full (non-incremental) evaluation with that one edge removed.
    const mask = all();
    mask[idx[i]] = 0;
    const full = task.evaluate(mask) - task.baseline.clean;
    assert.ok(Math.abs(exact[i] - want) < 2e-4, `${n}: exact ${exact[i]} vs hooks ${want}`);
    assert.ok(Math.abs(full - want) < 2e-4, `${n}: evaluate ${full} vs hooks ${want}`);
  });
  assert.ok(sawChange, "at least one edge must matter for this test to mean anything");
});

test("EAP is the derivative of the exact score (finite differences, incl. edges into logits)", async () => {
  const eap = await task.gradientScores(1);
  const eps = 1e-2;
  const byMagnitude = [...eap.keys()].sort((a, b) => Math.abs(eap[b]) - Math.abs(eap[a]));
  const logitsEdges = byMagnitude.filter((e) => graph.childOfEdge(e).kind === "logits").slice(0, 3);
  const mlpEdges = byMagnitude.filter((e) => graph.childOfEdge(e).kind === "mlp").slice(0, 2);
  const headEdges = byMagnitude.filter((e) => graph.childOfEdge(e).kind === "head").slice(0, 4);
  const maxScore = Math.abs(eap[byMagnitude[0]]);
  for (const e of [...logitsEdges, ...mlpEdges, ...headEdges]) {
    const mask = all();
    mask[e] = 1 - eps;
    const down = task.evaluate(mask);
    mask[e] = 1 + eps;
    const up = task.evaluate(mask);
    const fd = (down - up) / (2 * eps);
    assert.ok(
      Math.abs(fd - eap[e]) < 1e-3 * maxScore + 2e-3 * Math.abs(eap[e]),
      `${graph.edge(e).name}: finite difference ${fd} vs EAP ${eap[e]}`,
    );
  }
});

/** d metric / d (each child input), from the model's own backward pass on a run with interpolated input embeddings. */
function straightforwardIg(steps: number): Float64Array {
  const [B, Pn] = [pairs.clean.length, pairs.clean[0].length];
  const rows = B * Pn;
  const N = rows * D;
  const scores = new Float64Array(graph.nEdges);
  const metric = logitDiffMetric(pairs.answer, pairs.wrong);
  const diff = (node: string) =>
    nodeOutput(corrCache, node).map((x, i) => x - nodeOutput(cleanCache, node)[i]);
  const diffs = graph.nodes.map(diff);
  const add = (childName: string, g: Float32Array) => {
    const c = graph.children.find((x) => x.name === childName);
    if (!c) throw new Error(childName);
    for (let p = 0; p < c.nParents; p++) {
      let s = 0;
      for (let i = 0; i < N; i++) s += diffs[p][i] * g[i];
      scores[c.edgeOffset + p] += s / steps;
    }
  };
  for (let k = 1; k <= steps; k++) {
    const alpha = k / steps;
    const interp = (name: string): HookSpec => [
      name,
      (t) => {
        const c = corrCache.get(name).data;
        return new Tensor(
          c.map((x, i) => x + alpha * (t.data[i] - x)),
          t.shape,
        );
      },
    ];
    const run = model.runWithCache(pairs.clean, {
      fwdHooks: [interp("hook_embed"), interp("hook_pos_embed")],
      logits: "last",
    });
    const last = run.logits as Tensor;
    const finalLogits = new Tensor(last.data, [B, last.shape[2]]);
    const grads = backwardFromCache(model, run.cache, metric.gradient(finalLogits));
    for (let l = 0; l < L; l++) {
      const w = model.weights.blocks[l];
      for (const input of ["q", "k", "v"] as const) {
        const g = grads.get(`blocks.${l}.attn.hook_${input}`).data;
        const W = { q: w.W_Q, k: w.W_K, v: w.W_V }[input].data;
        for (let h = 0; h < H; h++) {
          const gN = new Float32Array(N);
          for (let r = 0; r < rows; r++)
            for (let d = 0; d < D; d++) {
              let s = 0;
              for (let j = 0; j < dh; j++) s += g[(r * H + h) * dh + j] * W[(h * D + d) * dh + j];
              gN[r * D + d] = s;
            }
          const gx = normBackward({
            kind: "layernorm",
            x: run.cache.get(`blocks.${l}.hook_resid_pre`).data,
            scale: run.cache.get(`blocks.${l}.ln1.hook_scale`).data,
            ln: w.ln1,
            gNormalized: gN,
            rows,
            D,
          }).gInput;
          add(`a${l}.h${h}<${input}>`, gx);
        }
      }
      const gm = normBackward({
        kind: "layernorm",
        x: run.cache.get(`blocks.${l}.hook_resid_mid`).data,
        scale: run.cache.get(`blocks.${l}.ln2.hook_scale`).data,
        ln: w.ln2,
        gNormalized: grads.get(`blocks.${l}.ln2.hook_normalized`).data,
        rows,
        D,
      }).gInput;
      add(`m${l}`, gm);
    }
    const gf = normBackward({
      kind: "layernorm",
      x: run.cache.get(`blocks.${L - 1}.hook_resid_post`).data,
      scale: run.cache.get("ln_final.hook_scale").data,
      ln: model.weights.lnFinal,
      gNormalized: grads.get("ln_final.hook_normalized").data,
      rows,
      D,
    }).gInput;
    add("logits", gf);
  }
  return scores;
}

test("EAP-IG equals a straightforward implementation (interpolated embeddings, averaged gradients)", async () => {
  for (const steps of [1, 4]) {
    const got = await task.gradientScores(steps);
    const want = straightforwardIg(steps);
    let max = 0;
    for (const x of want) max = Math.max(max, Math.abs(x));
    assert.ok(max > 1e-3, "scores must not all vanish");
    for (let e = 0; e < graph.nEdges; e++)
      assert.ok(
        Math.abs(got[e] - want[e]) < 1e-4 + 1e-3 * max,
        `${graph.edge(e).name} (steps ${steps}): ${got[e]} vs ${want[e]}`,
      );
  }
  // IG with several steps is not EAP: the test above would not tell them apart otherwise.
  const eap = await task.gradientScores(1);
  const ig = await task.gradientScores(4);
  assert.ok(eap.some((x, i) => Math.abs(x - ig[i]) > 1e-3));
});

test("pruning keeps exactly the kept edges that lie on a path from input to logits", async () => {
  const small = new EdgeGraph({ nLayers: 3, nHeads: 2 });
  const rng = mulberry32(7);
  for (let trial = 0; trial < 200; trial++) {
    const kept: number[] = [];
    const p = 0.02 + 0.2 * rng();
    for (let e = 0; e < small.nEdges; e++) if (rng() < p) kept.push(e);
    const pruned = new Set(pruneToPaths(small, kept));
    // Independent: search forward from input and backward from logits over the kept edges by node name.
    const edges = kept.map((e) => small.edge(e));
    const reach = (start: string, next: (n: string) => string[]) => {
      const seen = new Set([start]);
      const stack = [start];
      while (stack.length)
        for (const m of next(stack.pop() as string))
          if (!seen.has(m)) {
            seen.add(m);
            stack.push(m);
          }
      return seen;
    };
    const fwd = reach("input", (n) => edges.filter((e) => e.parent === n).map((e) => e.child));
    const bwd = reach("logits", (n) => edges.filter((e) => e.child === n).map((e) => e.parent));
    kept.forEach((e, i) => {
      const onPath = fwd.has(edges[i].parent) && bwd.has(edges[i].child);
      assert.equal(pruned.has(e), onPath, `trial ${trial}: ${edges[i].name}`);
    });
  }
});

test("pairs of different lengths run as separate batches; the metric is the mean over all pairs", async () => {
  // A third, shorter pair: the first pair without its last word.
  const short = {
    clean: [...pairs.clean, P.clean_tokens[0].slice(0, -1)],
    corrupted: [...pairs.corrupted, P.corrupted_tokens[0].slice(0, -1)],
    answer: [...pairs.answer, P.answer_token],
    wrong: [...pairs.wrong, P.wrong_token],
  };
  const mixed = new CircuitTask(model, short);
  const metricOf = (lists: number[][]) =>
    lists.map((toks, i) => {
      const l = model.run([toks], { logits: "last" });
      return l.data[short.answer[i]] - l.data[short.wrong[i]];
    });
  const mean = (xs: number[]) => xs.reduce((s, x) => s + x, 0) / xs.length;
  assert.ok(Math.abs(mixed.baseline.clean - mean(metricOf(short.clean))) < 1e-4);
  assert.ok(Math.abs(mixed.baseline.corrupted - mean(metricOf(short.corrupted))) < 1e-4);
  // Gradient scores add up over the groups: EAP of the mixed task = the length-weighted sum of each group's.
  const longOnly = await task.gradientScores(1);
  const shortOnly = await new CircuitTask(model, {
    clean: [short.clean[2]],
    corrupted: [short.corrupted[2]],
    answer: [short.answer[2]],
    wrong: [short.wrong[2]],
  }).gradientScores(1);
  const both = await mixed.gradientScores(1);
  for (let e = 0; e < graph.nEdges; e++)
    assert.ok(
      Math.abs(both[e] - ((2 / 3) * longOnly[e] + (1 / 3) * shortOnly[e])) < 1e-5,
      graph.edge(e).name,
    );
});

test("pairs split into several batches (memory bound) give the same baselines, evaluations and scores", async () => {
  const one = new CircuitTask(model, pairs, { maxBatchValues: 1 }); // one pair per batch
  assert.ok(Math.abs(one.baseline.clean - task.baseline.clean) < 1e-5);
  assert.ok(Math.abs(one.baseline.corrupted - task.baseline.corrupted) < 1e-5);
  const rng = mulberry32(2);
  const mask = new Float32Array(graph.nEdges).map(() => (rng() < 0.5 ? 1 : 0));
  assert.ok(Math.abs(one.evaluate(mask) - task.evaluate(mask)) < 1e-5);
  const a = await one.gradientScores(2);
  const b = await task.gradientScores(2);
  for (let e = 0; e < graph.nEdges; e++) assert.ok(Math.abs(a[e] - b[e]) < 1e-5, graph.edge(e).name);
  const ex = [0, 17, graph.nEdges - 1];
  const ea = await one.exactScores(ex);
  const eb = await task.exactScores(ex);
  for (const i of ex.keys()) assert.ok(Math.abs(ea[i] - eb[i]) < 1e-5);
});

test("backward passes run together add into one gradient sum and let their recorded layers go", () => {
  const { forward } = task;
  const { arch } = forward;
  const toks = pairs.clean[0];
  const Pn = toks.length;
  const shape = { B: 1, P: Pn, metric: [arch.logitDiffTerms(pairs.answer[0], pairs.wrong[0])] };
  const ref = forward.biasReference(shape);
  const clean = arch.inputNode(Int32Array.from(toks), 1, Pn);
  const corrupted = arch.inputNode(Int32Array.from(pairs.corrupted[0]), 1, Pn);
  // Two different recorded runs: the clean input with every edge kept, the corrupted one with about half
  // of them (at random, so that no two head inputs get the same mask row).
  const rand = mulberry32(7);
  const half = all().map(() => (rand() < 0.5 ? 0 : 1));
  const args = [
    { shape, input: clean, mask: all(), ref, record: true },
    { shape, input: corrupted, mask: half, ref, record: true },
  ];
  const record = () => args.map((a) => ({ args: a, run: forward.run(a) }));
  const recorded = record();
  // Every edge kept: all of a layer's head inputs are one residual, kept once; half the edges: each its own.
  const N = Pn * D;
  for (let l = 0; l < L; l++) {
    assert.equal(recorded[0].run.saved!.layers[l]!.x.length, N, `layer ${l}, all kept`);
    assert.equal(recorded[1].run.saved!.layers[l]!.x.length, 3 * H * N, `layer ${l}, half kept`);
  }
  const [one, two] = recorded.map((p) => forward.backward(p.args, p.run));
  const passes = record();
  const sum = forward.backwardSum(passes, { into: null });
  const same = (x: Float32Array, a: Float32Array, b: Float32Array, what: string) =>
    assert.deepEqual(
      x,
      a.map((v, i) => v + b[i]),
      what,
    );
  for (let l = 0; l < L; l++) {
    same(sum.heads[l], one.heads[l], two.heads[l], `heads ${l}`);
    same(sum.mlp[l], one.mlp[l], two.mlp[l], `mlp ${l}`);
  }
  same(sum.logits, one.logits, two.logits, "logits");
  assert.ok(
    one.heads[0].some((v, i) => Math.abs(v - two.heads[0][i]) > 1e-6),
    "the two runs differ",
  );
  for (const p of passes) {
    assert.ok(
      p.run.saved!.layers.every((s) => s === null),
      "recorded layers let go",
    );
    assert.throws(() => forward.backward(p.args, p.run), /run backward already/);
  }
});
