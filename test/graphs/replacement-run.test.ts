/**
 * The replacement model's constants on stories260k with random transcoders: the active features and the error
 * nodes recomputed here in float64 from the model's own cached MLP input and output.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { replacementRun } from "../../src/graphs/replacement-run.ts";
import { HookedTransformer } from "../../src/model/hooked-transformer.ts";
import { randomTranscoder, randomTranscoderSet } from "../helpers/random-transcoder.ts";

test("features and errors BOS-zeroed, errors and last logits equal a float64 recomputation from the cached run", async () => {
  const model = await HookedTransformer.fromPretrained("stories260k");
  const L = model.cfg.nLayers;
  const D = model.cfg.dModel;
  const dTc = 24;
  // JumpReLU on even layers, ReLU with a skip on odd ones
  const set = randomTranscoderSet({
    layers: L,
    dModel: D,
    dTc,
    seed: 10,
    jump: (l) => l % 2 === 0,
    skip: (l) => l % 2 === 1,
  });
  const tokens = model.toTokens("Once upon a time, there was a little girl.");
  const run = replacementRun(model, tokens, set);
  const nPos = tokens.length;
  const { logits, cache } = model.runWithCache([tokens]);

  const expected: string[] = [];
  const expectedActivations: number[] = [];
  for (let l = 0; l < L; l++) {
    const tc = set.transcoders[l];
    const x = cache.get(`blocks.${l}.ln2.hook_normalized`).data;
    const y = cache.get(`blocks.${l}.hook_mlp_out`).data;
    for (let p = 0; p < nPos; p++) {
      const recon = Float64Array.from(tc.bDec);
      for (let f = 0; f < dTc; f++) {
        let pre = tc.bEnc[f];
        for (let d = 0; d < D; d++) pre += tc.wEnc[f * D + d] * x[p * D + d];
        const on = p > 0 && pre > (tc.threshold ? tc.threshold[f] : 0);
        if (!on) continue;
        expected.push(`${l}/${p}/${f}`);
        expectedActivations.push(pre);
        for (let d = 0; d < D; d++) recon[d] += pre * tc.wDec[f * D + d];
      }
      if (tc.wSkip) {
        for (let o = 0; o < D; o++)
          for (let i = 0; i < D; i++) recon[o] += tc.wSkip[o * D + i] * x[p * D + i];
      }
      for (let d = 0; d < D; d++) {
        const want = p === 0 ? 0 : y[p * D + d] - recon[d]; // circuit-tracer zeroes BOS error vectors
        const got = run.errors[(l * nPos + p) * D + d];
        assert.ok(
          Math.abs(got - want) < 1e-4 * (1 + Math.abs(want)),
          `error L${l} pos ${p} d ${d}: ${got} vs ${want}`,
        );
      }
    }
  }
  // expected is built in (layer, pos, feature) order: the run's list must be that order too
  assert.deepEqual(
    run.features.map((f) => `${f.layer}/${f.pos}/${f.feature}`),
    expected,
  );
  run.features.forEach((f, i) => {
    assert.ok(Math.abs(f.activation - expectedActivations[i]) < 1e-4, `${expected[i]}: ${f.activation}`);
  });
  assert.ok(expected.length > L * nPos, "many features are active");
  assert.ok(!run.features.some((f) => f.pos === 0));
  const V = logits!.shape[2];
  assert.deepEqual(run.lastLogits, logits!.data.slice((nPos - 1) * V, nPos * V));
});

test("a set of the wrong depth or width is refused before any work", async () => {
  const model = await HookedTransformer.fromPretrained("stories260k");
  const L = model.cfg.nLayers;
  const base = {
    featureInputHook: "ln2.hook_normalized",
    featureOutputHook: "hook_mlp_out",
    modelName: null,
    ids: [],
  };
  const shallow = { ...base, transcoders: [randomTranscoder(1, 0, model.cfg.dModel, 4, false, false)] };
  assert.throws(
    () => replacementRun(model, [1, 2], shallow),
    new RegExp(`has 1 layers but the model has ${L}`),
  );
  const narrow = {
    ...base,
    transcoders: Array.from({ length: L }, (_, l) => randomTranscoder(l, l, 8, 4, false, false)),
  };
  assert.throws(() => replacementRun(model, [1, 2], narrow), /read d_model 8 but the model's is 64/);
  const full = Array.from({ length: L }, (_, l) => randomTranscoder(l, l, model.cfg.dModel, 4, false, false));
  assert.throws(
    () => replacementRun(model, [1, 2], { ...base, featureInputHook: "mlp.hook_in", transcoders: full }),
    /hook mlp.hook_in is not a hook of this model/,
  );
});
