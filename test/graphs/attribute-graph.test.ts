/**
 * The attribution graph's edges against an independent float64 linearised replacement model (forward runs with
 * sources switched on one at a time, test/helpers/linear-replacement.ts) on a tiny random Qwen2-like model
 * (q/k/v biases, one key/value head, rotary, RMSNorm, gated MLP) with random JumpReLU and skip transcoders;
 * and the row identity: a target's incoming edges plus its constant terms are its value on the prompt.
 */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { attributeGraph, checkGraphHooks, demeanedReadouts } from "../../src/graphs/attribute-graph.ts";
import { nodeRanges } from "../../src/graphs/attribution-graph.ts";
import type { TranscoderSet } from "../../src/graphs/transcoder-set.ts";
import type { HookedTransformer } from "../../src/model/hooked-transformer.ts";
import {
  assertRowIdentity,
  type RefGraph,
  referenceReplacementGraph,
  tinyModelWithTranscoders,
} from "../helpers/linear-replacement.ts";

const root = mkdtempSync(join(tmpdir(), "circuitscope-attribute-graph-"));
after(() => rmSync(root, { recursive: true, force: true }));

const TOKENS = [1, 17, 300, 45, 9, 88, 120];

let cached: {
  dir: string;
  model: HookedTransformer;
  set: TranscoderSet;
  ref: RefGraph;
  targets: number[];
} | null = null;
async function fixture() {
  if (cached) return cached;
  const { dir, model, set } = tinyModelWithTranscoders(root);
  const targets = [300, 45, 7];
  const ref = referenceReplacementGraph(dir, TOKENS, set, targets);
  cached = { dir, model, set, ref, targets };
  return cached;
}

test("every adjacency entry equals the float64 linearised replacement model's (forward differences)", async () => {
  const { model, set, ref, targets } = await fixture();
  const { graph } = await attributeGraph(model, TOKENS, set, { targets, batchSize: 5 });
  assert.deepEqual(
    graph.features.map((f) => `${f.layer}_${f.feature}_${f.pos}`),
    ref.features.map((f) => `${f.layer}_${f.feature}_${f.pos}`),
  );
  assert.ok(graph.features.length > 20, `${graph.features.length} features`);
  const r = nodeRanges(graph);
  const n = r.nNodes;
  assert.equal(ref.nSources, r.logitStart);
  const targetRows = [...graph.features.keys(), ...targets.map((_, k) => r.logitStart + k)];
  let worst = 0;
  let nonzero = 0;
  targetRows.forEach((row, t) => {
    for (let s = 0; s < n; s++) {
      const got = graph.adjacency[row * n + s];
      const want = s < ref.nSources ? ref.edges[t][s] : 0; // nothing feeds from a logit
      const err = Math.abs(got - want) / Math.max(1, Math.abs(want));
      worst = Math.max(worst, err);
      if (want !== 0) nonzero++;
      assert.ok(err < 1e-4, `A[${row}, ${s}] = ${got}, reference ${want}`);
    }
  });
  assert.ok(nonzero > n * 3, `${nonzero} nonzero reference edges`);
  // The rows of feature targets are zero wherever the source is not upstream: same or later layer, later position.
  graph.features.forEach((t, i) => {
    graph.features.forEach((s, j) => {
      if (s.layer >= t.layer || s.pos > t.pos) assert.equal(graph.adjacency[i * n + j], 0);
    });
  });
});

test("row identity: incoming edges + constant terms = the feature's pre-activation or the demeaned logit", async () => {
  const { model, set, ref, targets } = await fixture();
  assertRowIdentity(await attributeGraph(model, TOKENS, set, { targets, batchSize: 64 }), set, ref, targets);
});

test("the batch size does not change the graph", async () => {
  const { model, set, targets } = await fixture();
  const one = await attributeGraph(model, TOKENS, set, { targets, batchSize: 1 });
  const many = await attributeGraph(model, TOKENS, set, { targets, batchSize: 7 });
  let worst = 0;
  one.graph.adjacency.forEach((a, i) => {
    worst = Math.max(worst, Math.abs(a - many.graph.adjacency[i]));
  });
  assert.ok(worst < 1e-5, `largest difference ${worst}`);
});

test("progress is reported per batch, up to every target", async () => {
  const { model, set, targets } = await fixture();
  const seen: [number, number][] = [];
  const { graph } = await attributeGraph(model, TOKENS, set, {
    targets,
    batchSize: 10,
    onProgress: (done, total) => seen.push([done, total]),
  });
  const total = graph.features.length + targets.length;
  assert.equal(seen.length, Math.ceil(total / 10));
  assert.deepEqual(seen.at(-1), [total, total]);
});

test("a set the linearised backward cannot follow is refused naming the hook", async () => {
  const { model, set } = await fixture();
  assert.throws(
    () => checkGraphHooks(model, { ...set, featureInputHook: "hook_resid_pre" }),
    /feature_input_hook must be one of ln2\.hook_normalized, hook_resid_mid/,
  );
  assert.throws(
    () => checkGraphHooks(model, { ...set, featureOutputHook: "hook_attn_out" }),
    /feature_output_hook must be hook_mlp_out/,
  );
});

/** Counts reads of `obj[field]` (a weight view) while `fn` runs, then puts the view back. */
async function countReads(obj: object, field: string, fn: () => Promise<unknown>): Promise<number> {
  const view = Object.getOwnPropertyDescriptor(obj, field);
  assert.ok(view?.get, `${field} is a view (a getter)`);
  let reads = 0;
  Object.defineProperty(obj, field, {
    ...view,
    get() {
      reads++;
      return view.get!.call(obj);
    },
  });
  try {
    await fn();
  } finally {
    Object.defineProperty(obj, field, view);
  }
  return reads;
}

test("the graph never reads model.weights' W_U or W_V views, which keep copies beside the kernels'", async () => {
  const { model, set, targets } = await fixture();
  const w = model.weights;
  const graphRun = () => attributeGraph(model, TOKENS, set, { targets });
  assert.equal(await countReads(w, "W_U", graphRun), 0, "W_U read through model.weights");
  for (let l = 0; l < model.cfg.nLayers; l++)
    assert.equal(await countReads(w.blocks[l], "W_V", graphRun), 0, `blocks.${l}.W_V read`);
  // the counter counts: a read through the view is seen
  assert.equal(await countReads(w, "W_U", async () => w.W_U), 1);
});

test("demeaned readouts are W_U's columns minus its vocabulary mean, in float64", async () => {
  const { model, targets } = await fixture();
  const [D, V] = model.weights.W_U.shape;
  const WU = model.weights.W_U.data;
  const got = demeanedReadouts(model, targets);
  assert.equal(got.length, targets.length);
  targets.forEach((t, i) => {
    for (let d = 0; d < D; d++) {
      let mean = 0;
      for (let v = 0; v < V; v++) mean += WU[d * V + v];
      assert.equal(got[i][d], WU[d * V + t] - mean / V, `token ${t}, d ${d}`);
    }
  });
  assert.deepEqual(demeanedReadouts(model, []), []);
});

test("BOS as circuit-tracer's zero_positions: no features and zero error edges at position 0, its token node kept", async () => {
  const { model, set, targets } = await fixture();
  const { graph } = await attributeGraph(model, TOKENS, set, { targets, batchSize: 64 });
  const r = nodeRanges(graph);
  const n = r.nNodes;
  const P = TOKENS.length;
  assert.ok(!graph.features.some((f) => f.pos === 0));
  let bosToken = 0;
  let laterErrors = 0;
  for (let row = 0; row < n; row++) {
    for (let l = 0; l < model.cfg.nLayers; l++) {
      assert.equal(graph.adjacency[row * n + r.errorStart + l * P], 0, `row ${row}, error node L${l} pos 0`);
      laterErrors += Math.abs(graph.adjacency[row * n + r.errorStart + l * P + 1]);
    }
    bosToken += Math.abs(graph.adjacency[row * n + r.tokenStart]);
  }
  assert.ok(bosToken > 1e-3, `the BOS token node has edges (${bosToken})`);
  assert.ok(laterErrors > 1e-3, `error nodes at position 1 have edges (${laterErrors})`);
});
