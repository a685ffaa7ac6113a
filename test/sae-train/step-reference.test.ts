/**
 * The fast TopK training step (float32, sparse gradients, reused buffers, the loop's in-place Adam) against
 * a straightforward float64 statement of the same step, written densely here from the definitions: every
 * pre-activation, a mask from sorting, dense products for the decode and every gradient, then the
 * decoder-row projection, global-norm clipping, Adam and the row renormalisation. Loss, gradients and the
 * parameters after 8 steps (AuxK active from the third) must agree to float32 precision (observed
 * ≈ 1e-7 relative; the bounds are 1e-6 and 2e-6).
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import type { ActivationBuffer } from "../../src/sae-train/harvest.ts";
import {
  type ArrayOps,
  type BatchStep,
  batchLossAndGrads,
  PARAM_NAMES,
  type SaeParams,
} from "../../src/sae-train/sae-loss.ts";
import {
  defaultTrainSettings,
  FLOAT32_OPS,
  initTrainState,
  learningRate,
  type TrainSettings,
  trainSteps,
} from "../../src/sae-train/trainer.ts";
import { createOnnxKernels } from "../../src/tensor/onnx-kernels.ts";
import { referenceKernels } from "../../src/tensor/reference-kernels.ts";
import { mulberry32, randn } from "../../src/util/random.ts";
import { relErr } from "../helpers/float64-step.ts";

type P64 = Required<Omit<SaeParams<Float64Array>, "log_threshold">>;
const NAMES = ["W_enc", "b_enc", "W_dec", "b_dec"] as const;

const D = 6; // d_in = d_out
const M = 32; // d_sae
const ROWS = 8;

function data(seed: number): ActivationBuffer {
  const rng = mulberry32(seed);
  const buf = new Float32Array(ROWS * D);
  for (let i = 0; i < buf.length; i++) buf[i] = randn(rng) + 0.3;
  return { hook: "synthetic", width: D, rows: ROWS, data: buf };
}

function settings(): TrainSettings {
  // The whole harvest is every batch (only its order changes), so the reference can take the rows in order.
  return defaultTrainSettings({
    architecture: "topk",
    dSae: M,
    k: 3,
    batchSize: ROWS,
    tokens: ROWS * 8,
    lr: 5e-3,
    warmupSteps: 2,
    decaySteps: 3,
    deadWindow: 2,
    auxCoefficient: 0.5,
  });
}

/** Loss and dense gradients of one batch, float64, from the definitions (SAELens TopK + AuxK). */
function denseLossAndGrads(p: P64, x: Float64Array, dead: boolean[], s: TrainSettings) {
  const B = x.length / D;
  const g: P64 = {
    W_enc: new Float64Array(D * M),
    b_enc: new Float64Array(M),
    W_dec: new Float64Array(M * D),
    b_dec: new Float64Array(D),
  };
  const fired = new Array<boolean>(M).fill(false);
  const nDead = dead.filter(Boolean).length;
  const kAux = Math.min(Math.floor(D / 2), nDead);
  const auxScale = s.auxCoefficient * Math.min(nDead / Math.floor(D / 2), 1);
  let mse = 0;
  let aux = 0;
  for (let r = 0; r < B; r++) {
    const xIn = Array.from({ length: D }, (_, i) => x[r * D + i] - p.b_dec[i]);
    const pre = Array.from({ length: M }, (_, j) => {
      let v = p.b_enc[j];
      for (let i = 0; i < D; i++) v += xIn[i] * p.W_enc[i * M + j];
      return v;
    });
    const byValue = (cands: number[]) => [...cands].sort((a, b) => pre[b] - pre[a] || a - b);
    const top = byValue([...Array(M).keys()]).slice(0, s.k);
    const f = pre.map((v, j) => (top.includes(j) && v > 0 ? v : 0));
    const yHat = Array.from({ length: D }, (_, i) => {
      let v = p.b_dec[i];
      for (let j = 0; j < M; j++) v += f[j] * p.W_dec[j * D + i];
      return v;
    });
    const dyHat = yHat.map((v, i) => (2 * (v - x[r * D + i])) / B);
    for (let i = 0; i < D; i++) mse += (yHat[i] - x[r * D + i]) ** 2 / B;
    const dPre = new Array<number>(M).fill(0);
    for (let j = 0; j < M; j++) {
      if (f[j] > 0) fired[j] = true;
      for (let i = 0; i < D; i++) g.W_dec[j * D + i] += f[j] * dyHat[i];
      if (f[j] > 0) for (let i = 0; i < D; i++) dPre[j] += dyHat[i] * p.W_dec[j * D + i];
    }
    for (let i = 0; i < D; i++) g.b_dec[i] += dyHat[i];
    if (kAux > 0) {
      // AuxK: the top k_aux dead pre-activations reconstruct the residual y − ŷ (ŷ held fixed), no bias.
      const auxTop = byValue([...Array(M).keys()].filter((j) => dead[j])).slice(0, kAux);
      const d = Array.from({ length: D }, (_, i) => {
        let e = 0;
        for (const j of auxTop) e += pre[j] * p.W_dec[j * D + i];
        return e - (x[r * D + i] - yHat[i]);
      });
      for (let i = 0; i < D; i++) aux += (auxScale * d[i] ** 2) / B;
      for (const j of auxTop)
        for (let i = 0; i < D; i++) {
          dPre[j] += (2 * auxScale * d[i] * p.W_dec[j * D + i]) / B;
          g.W_dec[j * D + i] += (2 * auxScale * pre[j] * d[i]) / B;
        }
    }
    for (let j = 0; j < M; j++) {
      g.b_enc[j] += dPre[j];
      for (let i = 0; i < D; i++) {
        g.W_enc[i * M + j] += xIn[i] * dPre[j];
        g.b_dec[i] -= p.W_enc[i * M + j] * dPre[j];
      }
    }
  }
  return { loss: mse + aux, grads: g, fired };
}

/** One optimiser step in float64: row projection, global clipping, Adam, unit-norm rows. */
function denseStep(p: P64, m: P64, v: P64, g: P64, step: number, s: TrainSettings): void {
  for (let j = 0; j < M; j++) {
    let along = 0;
    let n2 = 0;
    for (let i = 0; i < D; i++) {
      along += g.W_dec[j * D + i] * p.W_dec[j * D + i];
      n2 += p.W_dec[j * D + i] ** 2;
    }
    for (let i = 0; i < D; i++) g.W_dec[j * D + i] -= (along / n2) * p.W_dec[j * D + i];
  }
  const norm = Math.sqrt(NAMES.reduce((a, n) => a + g[n].reduce((b, e) => b + e * e, 0), 0));
  const clip = Math.min(1, s.maxGradNorm / norm);
  const lr = learningRate(step, s);
  for (const n of NAMES)
    for (let i = 0; i < p[n].length; i++) {
      const gi = g[n][i] * clip;
      m[n][i] = 0.9 * m[n][i] + 0.1 * gi;
      v[n][i] = 0.999 * v[n][i] + 0.001 * gi * gi;
      const mHat = m[n][i] / (1 - 0.9 ** (step + 1));
      const vHat = v[n][i] / (1 - 0.999 ** (step + 1));
      p[n][i] -= (lr * mHat) / (Math.sqrt(vHat) + 1e-8);
    }
  for (let j = 0; j < M; j++) {
    let n2 = 0;
    for (let i = 0; i < D; i++) n2 += p.W_dec[j * D + i] ** 2;
    for (let i = 0; i < D; i++) p.W_dec[j * D + i] /= Math.sqrt(n2);
  }
}

const to64 = (p: SaeParams): P64 => ({
  W_enc: Float64Array.from(p.W_enc),
  b_enc: Float64Array.from(p.b_enc),
  W_dec: Float64Array.from(p.W_dec),
  b_dec: Float64Array.from(p.b_dec),
});
const zeros64 = (): P64 => ({
  W_enc: new Float64Array(D * M),
  b_enc: new Float64Array(M),
  W_dec: new Float64Array(M * D),
  b_dec: new Float64Array(D),
});

/** Each float32 step: the TypeScript loops (sparse, or with dense GEMMs), and the one-graph onnxruntime step. */
const VARIANTS: { name: string; ops: () => ArrayOps<Float32Array> }[] = [
  { name: "sparse decode and gradients", ops: () => FLOAT32_OPS(referenceKernels, { denseProducts: false }) },
  {
    name: "dense GEMM decode and gradients",
    ops: () => FLOAT32_OPS(referenceKernels, { denseProducts: true }),
  },
  { name: "one onnxruntime graph", ops: () => FLOAT32_OPS(createOnnxKernels()) },
];

/** The variant's whole-batch step: its graph when it has one, else the loops. */
function stepOf(ops: ArrayOps<Float32Array>): BatchStep<Float32Array> {
  if (ops.batchStep)
    return (p, b, d, s) => ops.batchStep!(p, b, d, s) ?? assert.fail("the graph declined TopK");
  return (p, b, d, s) => batchLossAndGrads(p, b, d, s, ops);
}

for (const variant of VARIANTS) {
  describe(`the fast TopK step equals a float64 reference step (${variant.name})`, () => {
    const buf = data(11);
    const s = settings();
    const ops = variant.ops();
    const step = stepOf(ops);

    test("loss and every gradient of one batch, with AuxK (a third of the latents dead)", () => {
      const p = initTrainState({ x: buf, y: buf }, s).params;
      const dead = Array.from({ length: M }, (_, j) => j % 3 === 1);
      const fast = step(
        p,
        { x: buf.data, y: buf.data, rows: ROWS, dead: Uint8Array.from(dead, Number) },
        { dIn: D, dSae: M, dOut: D },
        s,
      )!;
      const ref = denseLossAndGrads(to64(p), Float64Array.from(buf.data), dead, s);
      assert.ok(fast.aux > 0, "AuxK is active");
      assert.ok(Math.abs(fast.loss - ref.loss) <= 1e-6 * ref.loss, `loss ${fast.loss} vs ${ref.loss}`);
      for (const n of NAMES) {
        const e = relErr(fast.grads[n], ref.grads[n], 1e-3);
        assert.ok(e < 2e-6, `${n}: relative error ${e}`);
      }
      assert.deepEqual([...fast.fired], ref.fired.map(Number));
    });

    test("the parameters after 8 steps (AuxK from step 3), and the loss of each step", () => {
      const state = initTrainState({ x: buf, y: buf }, s);
      const p = to64(state.params);
      const m = zeros64();
      const v = zeros64();
      const sinceFired = new Array<number>(M).fill(0);
      const x = Float64Array.from(buf.data);
      const losses: number[] = [];
      for (let step = 0; step < 8; step++) {
        const dead = sinceFired.map((n) => n >= s.deadWindow);
        const { loss, grads, fired } = denseLossAndGrads(p, x, dead, s);
        losses.push(loss);
        denseStep(p, m, v, grads, step, s);
        for (let j = 0; j < M; j++) sinceFired[j] = fired[j] ? 0 : sinceFired[j] + 1;
      }
      trainSteps(state, { x: buf, y: buf }, s, { ops });
      assert.equal(state.step, 8);
      assert.ok(state.log[2].aux > 0, "AuxK is active from step 3");
      for (let t = 0; t < 8; t++) {
        const e = Math.abs(state.log[t].loss - losses[t]) / losses[t];
        assert.ok(e < 1e-6, `step ${t}: loss ${state.log[t].loss} vs ${losses[t]}`);
      }
      for (const n of NAMES) {
        const e = relErr(state.params[n], p[n], 1e-3);
        assert.ok(e < 2e-6, `${n}: relative error ${e} after 8 steps`);
      }
      for (const n of PARAM_NAMES) if (!NAMES.includes(n as never)) assert.equal(state.params[n], undefined);
    });
  });
}
