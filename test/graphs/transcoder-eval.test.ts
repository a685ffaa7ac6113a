/**
 * `transcoders eval` on stories260k: a set that returns its input exactly (identity skip, hook_mlp_out read and
 * written) leaves the cross-entropy clean (score 1, explained variance 1); a set that predicts zero equals
 * the zero ablation (score 0); a random set's per-layer explained variance and L0 and its all-layers-replaced
 * cross-entropy equal a float64 recomputation made here from the model's own runs.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { evaluateTranscoderSet } from "../../src/graphs/transcoder-eval.ts";
import type { Transcoder, TranscoderSet } from "../../src/graphs/transcoder-set.ts";
import { HookedTransformer } from "../../src/model/hooked-transformer.ts";
import type { Tensor } from "../../src/tensor/tensor.ts";
import { randomTranscoder } from "../helpers/random-transcoder.ts";

const TEXTS = [
  "Once upon a time, there was a little girl named Lily.",
  "The dog ran to the park and played with a ball.",
  "Tom was sad, so his mom gave him a big hug.",
];

function setOf(transcoders: Transcoder[], input = "ln2.hook_normalized"): TranscoderSet {
  return {
    featureInputHook: input,
    featureOutputHook: "hook_mlp_out",
    modelName: null,
    ids: transcoders.map((_, l) => `layer_${l}`),
    transcoders,
  };
}

function zeros(layer: number, D: number, dTc: number, skip: Float32Array | null): Transcoder {
  return {
    layer,
    dModel: D,
    dTranscoder: dTc,
    wEnc: new Float32Array(dTc * D),
    wDec: new Float32Array(dTc * D),
    bEnc: new Float32Array(dTc),
    bDec: new Float32Array(D),
    threshold: null,
    wSkip: skip,
  };
}

describe("transcoders eval", async () => {
  const model = await HookedTransformer.fromPretrained("stories260k");
  const L = model.cfg.nLayers;
  const D = model.cfg.dModel;

  test("an exact stand-in keeps the clean cross-entropy; a zero one equals the zero ablation", async () => {
    const identity = new Float32Array(D * D);
    for (let i = 0; i < D; i++) identity[i * D + i] = 1;
    const exact = setOf(
      Array.from({ length: L }, (_, l) => zeros(l, D, 8, identity)),
      "hook_mlp_out",
    );
    const r = await evaluateTranscoderSet(model, exact, TEXTS);
    assert.equal(r.ce_loss_with_transcoders, r.ce_loss_clean);
    assert.equal(r.ce_loss_score, 1);
    assert.ok(r.ce_loss_zero_ablation > r.ce_loss_clean + 0.1);
    for (const layer of r.layers) {
      assert.ok(Math.abs(layer.explained_variance - 1) < 1e-9);
      assert.equal(layer.l0, 0);
      assert.equal(layer.dead_fraction, 1);
    }
    const none = setOf(Array.from({ length: L }, (_, l) => zeros(l, D, 8, null)));
    const z = await evaluateTranscoderSet(model, none, TEXTS);
    assert.equal(z.ce_loss_with_transcoders, z.ce_loss_zero_ablation);
    assert.equal(z.ce_loss_score, 0);
    assert.equal(z.ce_loss_clean, r.ce_loss_clean);
  });

  test("a random set's per-layer metrics and replaced cross-entropy equal a float64 recomputation", async () => {
    const set = setOf(
      Array.from({ length: L }, (_, l) => {
        const tc = randomTranscoder(40 + l, l, D, 16, l % 2 === 0, false);
        // Small weights: the replaced run stays in the model's range.
        for (const a of [tc.wEnc, tc.wDec, tc.bDec]) for (let i = 0; i < a.length; i++) a[i] *= 0.2;
        return tc;
      }),
    );
    const r = await evaluateTranscoderSet(model, set, TEXTS, { batchSize: 1 });
    /** Float64 prediction of layer l at one position; counts active features. */
    const predict = (l: number, x: Float32Array, onActive?: (f: number) => void) => {
      const tc = set.transcoders[l];
      const y = Float64Array.from(tc.bDec);
      for (let f = 0; f < tc.dTranscoder; f++) {
        let pre = tc.bEnc[f];
        for (let i = 0; i < D; i++) pre += tc.wEnc[f * D + i] * x[i];
        if (!(pre > (tc.threshold ? tc.threshold[f] : 0))) continue;
        onActive?.(f);
        for (let i = 0; i < D; i++) y[i] += pre * tc.wDec[f * D + i];
      }
      return y;
    };
    let tokens = 0;
    let ceReplaced = 0;
    const err = new Float64Array(L);
    const sumY = Array.from({ length: L }, () => new Float64Array(D));
    const sumSqY = new Float64Array(L);
    const active = new Float64Array(L);
    const fired = Array.from({ length: L }, () => new Set<number>());
    for (const text of TEXTS) {
      const toks = model.toTokens(text).slice(0, 128);
      const { cache } = model.runWithCache([toks]);
      for (let l = 0; l < L; l++) {
        const x = cache.get(`blocks.${l}.ln2.hook_normalized`).data;
        const y = cache.get(`blocks.${l}.hook_mlp_out`).data;
        for (let p = 1; p < toks.length; p++) {
          const yHat = predict(l, x.subarray(p * D, (p + 1) * D), (f) => {
            active[l]++;
            fired[l].add(f);
          });
          for (let i = 0; i < D; i++) {
            const v = y[p * D + i];
            err[l] += (v - yHat[i]) ** 2;
            sumY[l][i] += v;
            sumSqY[l] += v * v;
          }
        }
      }
      tokens += toks.length - 1;
      // The replaced run: each layer's input read in that run, its output overwritten from position 1 on.
      const inputs: Float32Array[] = [];
      const hooks = Array.from({ length: L }, (_, l) => [
        [
          `blocks.${l}.ln2.hook_normalized`,
          (a: Tensor) => {
            inputs[l] = a.data.slice();
          },
        ],
        [
          `blocks.${l}.hook_mlp_out`,
          (a: Tensor) => {
            for (let p = 1; p < toks.length; p++)
              a.data.set(Float32Array.from(predict(l, inputs[l].subarray(p * D, (p + 1) * D))), p * D);
          },
        ],
      ]).flat() as [string, (a: Tensor) => void][];
      ceReplaced += model.loss([toks], { fwdHooks: hooks }).perToken[0].reduce((s, v) => s + v, 0);
    }
    assert.equal(r.tokens, tokens);
    assert.ok(
      Math.abs(r.ce_loss_with_transcoders - ceReplaced / tokens) < 1e-4,
      `${r.ce_loss_with_transcoders} vs ${ceReplaced / tokens}`,
    );
    assert.ok(
      Math.abs(r.ce_loss_with_transcoders - r.ce_loss_clean) > 1e-3,
      "the replacement changes the loss",
    );
    for (let l = 0; l < L; l++) {
      let meanSq = 0;
      for (let i = 0; i < D; i++) meanSq += (sumY[l][i] / tokens) ** 2;
      const ev = 1 - err[l] / (sumSqY[l] - tokens * meanSq);
      assert.ok(
        Math.abs(r.layers[l].explained_variance - ev) < 1e-4,
        `layer ${l}: ${r.layers[l].explained_variance} vs ${ev}`,
      );
      assert.equal(r.layers[l].l0, active[l] / tokens);
      assert.equal(r.layers[l].dead_fraction, 1 - fired[l].size / 16);
    }
  });
});
