/**
 * An independent float64 implementation of the local replacement model (circuit-tracer's linearisation) of a
 * Llama-family checkpoint: the float64 reference forward (llama-reference.ts) with every attention pattern and
 * norm scale pinned to the prompt's own values and each MLP output replaced by the sources switched on (feature
 * writes, error nodes) plus the constant b_dec (+ W_skip · input). With a cross-layer transcoder a feature of
 * layer l writes W_dec_l[f, l' − l] into every layer l' ≥ l. The model is then linear in the sources, so
 * an edge is a difference of two forward runs — forward mode, nothing shared with the backward under test:
 * A[t, s] = T(only s on) − T(nothing on), and T(nothing on) is the target's constant term.
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { type AttributionGraph, nodeRanges } from "../../src/graphs/attribution-graph.ts";
import type { ReplacementRun } from "../../src/graphs/replacement-run.ts";
import type { Transcoder, TranscoderSet } from "../../src/graphs/transcoder-set.ts";
import { HookedTransformer } from "../../src/model/hooked-transformer.ts";
import { loadCheckpoint, makeRandomCheckpoint } from "../../src/weights/checkpoint.ts";
import { parseHfConfig } from "../../src/weights/families/index.ts";
import { llamaReferenceForward, type RefTensor } from "./llama-reference.ts";
import { LLAMA_VARIANTS, makeVariantCheckpoint } from "./llama-variants.ts";
import { randomCrossLayerTranscoder, randomTranscoderSet } from "./random-transcoder.ts";

const QWEN2 = 2; // llama-variants: qwen2, q/k/v biases, one key/value head, untied

/**
 * A tiny random Qwen2-like checkpoint under `root` (q/k/v biases, one key/value head, rotary, RMSNorm, gated
 * MLP), loaded without weight processing, and random transcoders: JumpReLU on layer 0, ReLU with a skip
 * connection on layer 1.
 */
export function tinyModelWithTranscoders(root: string): {
  dir: string;
  model: HookedTransformer;
  set: TranscoderSet;
} {
  const { dir, config } = makeVariantCheckpoint(root, QWEN2);
  const model = HookedTransformer.fromCheckpoint(loadCheckpoint(dir), { processing: false });
  const set = randomTranscoderSet({
    layers: config.nLayers,
    dModel: config.dModel,
    dTc: 12,
    seed: 40,
    jump: (l) => l === 0,
    skip: (l) => l === 1,
  });
  return { dir, model, set };
}

/**
 * A tiny random Qwen2-like checkpoint as above but three layers deep (so a layer-0 feature writes across two
 * later layers), with a random cross-layer transcoder (JumpReLU when `jump`).
 */
export function tinyModelWithCrossLayerTranscoder(
  root: string,
  jump = true,
): { dir: string; model: HookedTransformer; set: TranscoderSet } {
  const v = LLAMA_VARIANTS[QWEN2];
  const config = parseHfConfig({ ...v.json, num_hidden_layers: 3 }, v.name);
  const dir = join(root, "clt-qwen2-3-layers");
  makeRandomCheckpoint(dir, config, { seed: 21, dtype: v.dtype, std: 0.2 });
  const model = HookedTransformer.fromCheckpoint(loadCheckpoint(dir), { processing: false });
  const set = randomCrossLayerTranscoder({ layers: 3, dModel: config.dModel, dTc: 10, seed: 50, jump });
  return { dir, model, set };
}

export interface RefFeature {
  layer: number;
  pos: number;
  feature: number;
  activation: number;
}

export interface RefGraph {
  features: RefFeature[];
  /** Rows targets (features, then logits), columns sources (features, errors layer-major, tokens). */
  edges: Float64Array[];
  /** Each target's value with nothing on: the constant terms through the frozen model. */
  constants: Float64Array;
  /** Each target's value on the real run: pre-activation W_enc·x, or the demeaned logit. */
  values: Float64Array;
  nSources: number;
}

function preActivations(tc: Transcoder, x: Float64Array, o: number): Float64Array {
  const D = tc.dModel;
  const pre = new Float64Array(tc.dTranscoder);
  for (let f = 0; f < tc.dTranscoder; f++) {
    let s = tc.bEnc[f];
    for (let d = 0; d < D; d++) s += tc.wEnc[f * D + d] * x[o + d];
    pre[f] = s;
  }
  return pre;
}

/** W_enc[f] · x (no b_enc). */
function encoderDot(tc: Transcoder, f: number, x: Float64Array, o: number): number {
  const D = tc.dModel;
  let s = 0;
  for (let d = 0; d < D; d++) s += tc.wEnc[f * D + d] * x[o + d];
  return s;
}

/** The graph of `tokens` in the float64 linearised replacement model of the checkpoint in `dir`. */
export function referenceReplacementGraph(
  dir: string,
  tokens: readonly number[],
  set: TranscoderSet,
  logitTokens: readonly number[],
): RefGraph {
  const clean = llamaReferenceForward(dir, tokens);
  const L = set.transcoders.length;
  const D = set.transcoders[0].dModel;
  const P = tokens.length;
  const get = (name: string) => clean.get(name)!.data;
  // A per-layer transcoder writes into its own layer (W_dec [d_tc, d_model]); a cross-layer transcoder's layer
  // `from` into every layer `into` ≥ from (W_dec [d_tc, L − from, d_model]).
  const writesInto = (from: number, into: number) => (set.crossLayer ? into >= from : into === from);
  const decoderValue = (from: number, f: number, into: number, d: number) => {
    const nOut = set.crossLayer ? L - from : 1;
    return set.transcoders[from].wDec[(f * nOut + (into - from)) * D + d];
  };
  // Active features (BOS zeroed) and error nodes from the float64 run.
  const features: RefFeature[] = [];
  const errors = new Float64Array(L * P * D);
  for (let l = 0; l < L; l++) {
    const tc = set.transcoders[l];
    const x = get(`blocks.${l}.ln2.hook_normalized`);
    for (let p = 1; p < P; p++) {
      const pre = preActivations(tc, x, p * D);
      for (let f = 0; f < tc.dTranscoder; f++)
        if (pre[f] > (tc.threshold ? tc.threshold[f] : 0))
          features.push({ layer: l, pos: p, feature: f, activation: pre[f] });
    }
  }
  // The graph's order: (layer, pos, feature).
  features.sort((a, b) => a.layer - b.layer || a.pos - b.pos || a.feature - b.feature);
  for (let l = 0; l < L; l++) {
    const tc = set.transcoders[l];
    const x = get(`blocks.${l}.ln2.hook_normalized`);
    const y = get(`blocks.${l}.hook_mlp_out`);
    for (let p = 0; p < P; p++) {
      const recon = Float64Array.from(tc.bDec);
      for (const f of features) {
        if (f.pos !== p || !writesInto(f.layer, l)) continue;
        for (let d = 0; d < D; d++) recon[d] += f.activation * decoderValue(f.layer, f.feature, l, d);
      }
      if (tc.wSkip)
        for (let o = 0; o < D; o++)
          for (let i = 0; i < D; i++) recon[o] += tc.wSkip[o * D + i] * x[p * D + i];
      for (let d = 0; d < D; d++) errors[(l * P + p) * D + d] = y[p * D + d] - recon[d];
    }
  }
  const nF = features.length;
  const nSources = nF + L * P + P;
  const nTargets = nF + logitTokens.length;

  /** Every target's value with the sources in `on` switched on (the frozen, linear model). */
  const targetsWith = (on: (s: number) => boolean): Float64Array => {
    const x2: Float64Array[] = [];
    const hook = (name: string, act: RefTensor) => {
      const m = /^blocks\.(\d+)\.(.+)$/.exec(name);
      const sub = m ? m[2] : name;
      if (sub === "hook_embed") {
        for (let p = 0; p < P; p++) if (!on(nF + L * P + p)) act.data.fill(0, p * D, (p + 1) * D);
      } else if (sub.endsWith("hook_scale") || sub === "attn.hook_pattern") {
        act.data.set(get(name)); // frozen at the prompt's own run
      } else if (sub === "ln2.hook_normalized") {
        x2[Number(m![1])] = act.data.slice();
      } else if (sub === "hook_mlp_out") {
        const l = Number(m![1]);
        const tc = set.transcoders[l];
        const out = act.data;
        for (let p = 0; p < P; p++) {
          for (let d = 0; d < D; d++) {
            let s = tc.bDec[d];
            if (tc.wSkip) for (let i = 0; i < D; i++) s += tc.wSkip[d * D + i] * x2[l][p * D + i];
            // BOS: the error is a constant of the linearised model (circuit-tracer zeroes its error node)
            if (p === 0 || on(nF + l * P + p)) s += errors[(l * P + p) * D + d];
            out[p * D + d] = s;
          }
        }
        features.forEach((f, i) => {
          if (!writesInto(f.layer, l) || !on(i)) return;
          for (let d = 0; d < D; d++)
            out[f.pos * D + d] += f.activation * decoderValue(f.layer, f.feature, l, d);
        });
      }
    };
    const acts = llamaReferenceForward(dir, tokens, { hook });
    const values = new Float64Array(nTargets);
    features.forEach((f, i) => {
      values[i] = encoderDot(set.transcoders[f.layer], f.feature, x2[f.layer], f.pos * D);
    });
    const logits = acts.get("logits")!.data;
    const V = logits.length / P;
    let mean = 0;
    for (let v = 0; v < V; v++) mean += logits[(P - 1) * V + v];
    mean /= V;
    logitTokens.forEach((t, k) => {
      values[nF + k] = logits[(P - 1) * V + t] - mean;
    });
    return values;
  };

  const constants = targetsWith(() => false);
  const values = targetsWith(() => true);
  const edges = Array.from({ length: nTargets }, () => new Float64Array(nSources));
  for (let s = 0; s < nSources; s++) {
    const t = targetsWith((i) => i === s);
    for (let r = 0; r < nTargets; r++) edges[r][s] = t[r] - constants[r];
  }
  return { features, edges, constants, values, nSources };
}

/**
 * Asserts every adjacency entry of the feature and logit rows equals the reference's (1e-4 relative, zero
 * from a logit), the features are the reference's, and enough edges are nonzero to mean something.
 */
export function assertEdgesMatchReference(
  graph: AttributionGraph,
  ref: RefGraph,
  logitTokens: readonly number[],
) {
  assert.deepEqual(
    graph.features.map((f) => `${f.layer}_${f.feature}_${f.pos}`),
    ref.features.map((f) => `${f.layer}_${f.feature}_${f.pos}`),
  );
  const r = nodeRanges(graph);
  const n = r.nNodes;
  assert.equal(ref.nSources, r.logitStart);
  const rows = [...graph.features.keys(), ...logitTokens.map((_, k) => r.logitStart + k)];
  let nonzero = 0;
  rows.forEach((row, t) => {
    for (let s = 0; s < n; s++) {
      const got = graph.adjacency[row * n + s];
      const want = s < ref.nSources ? ref.edges[t][s] : 0; // nothing feeds from a logit
      if (want !== 0) nonzero++;
      assert.ok(
        Math.abs(got - want) < 1e-4 * Math.max(1, Math.abs(want)),
        `A[${row}, ${s}] = ${got}, reference ${want}`,
      );
    }
  });
  assert.ok(nonzero > n * 3, `${nonzero} nonzero reference edges`);
}

/**
 * The row identity: each feature or logit row's incoming edges plus the reference's constant term equal the
 * target's value from the model's own (float32) run — W_enc[f] · ln2.hook_normalized, or the demeaned logit.
 */
export function assertRowIdentity(
  { graph, run }: { graph: AttributionGraph; run: ReplacementRun },
  set: TranscoderSet,
  ref: RefGraph,
  logitTokens: readonly number[],
) {
  const r = nodeRanges(graph);
  const n = r.nNodes;
  const D = set.transcoders[0].dModel;
  const values: number[] = graph.features.map((f) => {
    const x = run.cache.get(`blocks.${f.layer}.ln2.hook_normalized`).data;
    const wEnc = set.transcoders[f.layer].wEnc;
    let s = 0;
    for (let d = 0; d < D; d++) s += wEnc[f.feature * D + d] * x[f.pos * D + d];
    return s;
  });
  const mean = run.lastLogits.reduce((a, b) => a + b, 0) / run.lastLogits.length;
  for (const t of logitTokens) values.push(run.lastLogits[t] - mean);
  const rows = [...graph.features.keys(), ...logitTokens.map((_, k) => r.logitStart + k)];
  rows.forEach((row, t) => {
    let sum = ref.constants[t];
    for (let s = 0; s < n; s++) sum += graph.adjacency[row * n + s];
    assert.ok(
      Math.abs(sum - values[t]) < 1e-4 * (1 + Math.abs(values[t])),
      `row ${row}: edges + constants ${sum}, value ${values[t]}`,
    );
  });
  // the constants are not negligible: without them the identity fails (one may be near 0 by chance)
  const sizeable = rows.filter((_, t) => Math.abs(ref.constants[t]) > 1e-3).length;
  assert.ok(sizeable > 0.9 * rows.length, `${sizeable} of ${rows.length} rows have a constant > 1e-3`);
}
