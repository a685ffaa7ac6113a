/**
 * The training loop: deterministic for a seed, a run resumed from a checkpoint file equal bit for bit to
 * one never stopped, passes over the harvest that are permutations, the learning-rate schedule, and
 * learning itself on data made of known sparse features (held-out explained variance computed by src/sae).
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import { Sae } from "../../src/sae/sae.ts";
import { loadCheckpoint, saveCheckpoint } from "../../src/sae-train/checkpoint.ts";
import type { ActivationBuffer } from "../../src/sae-train/harvest.ts";
import { evaluateSae } from "../../src/sae-train/held-out.ts";
import type { ArrayOps, TrainArchitecture } from "../../src/sae-train/sae-loss.ts";
import { trainedSaeContents } from "../../src/sae-train/train-sae.ts";
import {
  BatchOrder,
  defaultTrainSettings,
  FLOAT32_OPS,
  initTrainState,
  learningRate,
  stateTensors,
  type TrainSettings,
  type TrainState,
  trainSteps,
} from "../../src/sae-train/trainer.ts";
import { createOnnxKernels } from "../../src/tensor/onnx-kernels.ts";
import { referenceKernels } from "../../src/tensor/reference-kernels.ts";
import { mulberry32, randn } from "../../src/util/random.ts";

const dir = mkdtempSync(join(tmpdir(), "circuitscope-sae-train-"));
after(() => rmSync(dir, { recursive: true, force: true }));
const ops = FLOAT32_OPS(referenceKernels);

/** Rows that are sums of 2 of 24 fixed random directions with positive weights, plus a constant offset. */
function sparseData(rows: number, width: number, seed: number): ActivationBuffer {
  const rng = mulberry32(seed);
  const nFeat = 24;
  const dirs = Array.from({ length: nFeat }, () => Array.from({ length: width }, () => randn(rng)));
  const data = new Float32Array(rows * width);
  for (let r = 0; r < rows; r++) {
    for (let i = 0; i < width; i++) data[r * width + i] = 0.5;
    for (let a = 0; a < 2; a++) {
      const f = Math.floor(rng() * nFeat);
      const w = 1 + rng();
      for (let i = 0; i < width; i++) data[r * width + i] += w * dirs[f][i];
    }
  }
  return { hook: "synthetic", width, rows, data };
}

function settings(architecture: TrainArchitecture, over: Partial<TrainSettings> = {}): TrainSettings {
  return defaultTrainSettings({
    architecture,
    dSae: 48,
    tokens: 64 * 60,
    batchSize: 64,
    k: 2,
    lr: 3e-3,
    deadWindow: 5,
    seed: 7,
    ...over,
  });
}

function run(
  buf: ActivationBuffer,
  s: TrainSettings,
  untilStep?: number,
  state?: TrainState,
  withOps: ArrayOps<Float32Array> = ops,
): TrainState {
  const st = state ?? initTrainState({ x: buf, y: buf }, s);
  trainSteps(st, { x: buf, y: buf }, s, { ops: withOps, untilStep });
  return st;
}

/**
 * The ops as they were before the speed work: the encoder product through `matmul`, then the bias, and no
 * `denseProducts`, so the decode and the gradients take the sparse loops.
 */
const productThenBias = (o: ArrayOps<Float32Array>): ArrayOps<Float32Array> => ({
  zeros: o.zeros,
  matmul: o.matmul,
});

/** The ops without their one-call GEMM-with-bias only (the rest, e.g. `denseProducts`, kept). */
const withoutAffine = (o: ArrayOps<Float32Array>): ArrayOps<Float32Array> => ({ ...o, affine: undefined });

function sameState(a: TrainState, b: TrainState): void {
  assert.equal(a.step, b.step);
  for (const n of ["W_enc", "b_enc", "W_dec", "b_dec", "log_threshold"] as const) {
    assert.deepEqual(a.params[n], b.params[n], `params.${n}`);
    assert.deepEqual(a.adamM[n], b.adamM[n], `adamM.${n}`);
    assert.deepEqual(a.adamV[n], b.adamV[n], `adamV.${n}`);
  }
  assert.deepEqual(a.sinceFired, b.sinceFired);
  assert.deepEqual(a.log, b.log);
  assert.ok(Object.is(a.thresholdEma, b.thresholdEma) || a.thresholdEma === b.thresholdEma);
}

const data = sparseData(640, 12, 3);

describe("determinism and resume", () => {
  for (const arch of ["topk", "batchtopk", "jumprelu", "standard"] as const) {
    test(`${arch}: same seed, same run; a checkpointed run resumed equals one never stopped, bit for bit`, () => {
      const s = settings(arch);
      const whole = run(data, s);
      assert.equal(whole.step, 60);
      sameState(run(data, s), whole);
      const path = join(dir, `${arch}.checkpoint.safetensors`);
      saveCheckpoint(path, run(data, s, 23), "run-a");
      const resumed = loadCheckpoint(path, "run-a");
      assert.equal(resumed.step, 23);
      sameState(run(data, s, undefined, resumed), whole);
      assert.throws(() => loadCheckpoint(path, "run-b"), /different run/);
      const other = run(data, { ...s, seed: 8 });
      assert.notDeepEqual(other.params.W_dec, whole.params.W_dec);
    });
  }
});

/** SHA-256 of every state tensor (by name) and the step log. */
function stateDigest(st: TrainState): string {
  const h = createHash("sha256");
  for (const [name, t] of Object.entries(stateTensors(st)).sort(([a], [b]) => (a < b ? -1 : 1))) {
    h.update(name);
    h.update(new Uint8Array(t.buffer, t.byteOffset, t.byteLength));
  }
  h.update(JSON.stringify(st.log));
  return h.digest("hex");
}

describe("speed work keeps the arithmetic", () => {
  // The states the trainer reached before its speed work (main at e8f893d, reference kernels), 60 steps with
  // dead latents from step 5 on (AuxK active): an optimisation that changes one bit changes these. The
  // encoder product is taken as it was then (bmm, then the bias): the reference kernels' one-call
  // `linear` starts each sum from the bias, so with them `affine` rounds differently (the onnx kernels'
  // does not: the next test), and the float64 reference step (step-reference.test.ts) covers that path.
  // Likewise the decode and the gradients are taken as then, by the sparse loops (no `denseProducts`): the
  // dense GEMM path sums in another order, and step-reference.test.ts holds it to the float64 step.
  const before: Record<TrainArchitecture, string> = {
    topk: "57118709c46459f08a49b0af898eb46d35ce7d0687f770cd6e9ae7c4c17213c6",
    batchtopk: "a8330558a1a75aa8949d71c367d652778a9e0403d98845c6e784154cb62b9c27",
    jumprelu: "8d3023552dd492b9476c18d5d1c5e2547de724cc175a7af37d3d68fb40ed423a",
    standard: "ae283603411c5b1b2bf77859ae7544118cfa4d97a7f9faee89759944d1f0f3e9",
  };
  for (const arch of ["topk", "batchtopk", "jumprelu", "standard"] as const) {
    test(`${arch}: the trained state for seed 7 is the pre-optimisation one, bit for bit`, () => {
      assert.equal(
        stateDigest(run(data, settings(arch), undefined, undefined, productThenBias(ops))),
        before[arch],
      );
    });
  }
  test("onnx: the encoder's GEMM with its bias gives the state of bmm then the bias, bit for bit", () => {
    const kernels = createOnnxKernels();
    // TopK without its one-graph step (graph-step.test.ts), which computes x' W_enc + b_enc in its own Gemm.
    for (const [arch, onnx] of [
      ["topk", FLOAT32_OPS(kernels, { graph: false, denseProducts: false })],
      ["jumprelu", FLOAT32_OPS(kernels, { graph: false })],
      ["topk", FLOAT32_OPS(kernels, { graph: false })],
    ] as const) {
      assert.equal(onnx.batchStep, undefined);
      assert.ok(onnx.affine, "the float32 ops have the one-call product");
      const s = settings(arch);
      const fused = run(data, s, undefined, undefined, onnx);
      sameState(fused, run(data, s, undefined, undefined, withoutAffine(onnx)));
      assert.notEqual(stateDigest(fused), stateDigest(initTrainState({ x: data, y: data }, s)));
    }
  });
});

describe("batches", () => {
  test("each pass over the harvest visits every row once, in a different order each pass", () => {
    const order = new BatchOrder(10, 1);
    const steps = [0, 1, 2, 3, 4].map((s) => [...order.batch(s, 4)]);
    const flat = steps.flat();
    assert.deepEqual(
      [...flat.slice(0, 10)].sort((a, b) => a - b),
      [...Array(10).keys()],
    );
    assert.deepEqual(
      [...flat.slice(10, 20)].sort((a, b) => a - b),
      [...Array(10).keys()],
    );
    assert.notDeepEqual(flat.slice(0, 10), flat.slice(10, 20));
  });
  test("the learning rate warms up linearly, holds, then decays linearly to 0 at the last step", () => {
    const s = settings("topk", { tokens: 64 * 100, warmupSteps: 10, decaySteps: 20, lr: 1 });
    assert.equal(learningRate(0, s), 0.1);
    assert.equal(learningRate(9, s), 1);
    assert.equal(learningRate(50, s), 1);
    assert.equal(learningRate(80, s), 1);
    assert.equal(learningRate(99, s), 1 / 20);
    assert.ok(learningRate(90, s) < learningRate(85, s));
  });
});

describe("learning", () => {
  const heldOut = sparseData(300, 12, 3);
  for (const arch of ["topk", "batchtopk", "standard", "jumprelu"] as const) {
    test(`${arch}: held-out explained variance of data made of sparse features rises well above the start`, () => {
      const s = settings(arch, { tokens: 64 * 400, l1: arch === "standard" ? 0.01 : 0.001 });
      const dims = { dIn: 12, dSae: 48, dOut: 12 };
      const meta = { hook: "blocks.0.hook_resid_pre", modelName: "synthetic", context: 8 };
      const evaluate = (st: TrainState) => {
        const contents = trainedSaeContents(st, s, dims, meta);
        if (arch === "batchtopk" && !Number.isFinite(st.thresholdEma)) return Number.NEGATIVE_INFINITY;
        const sae = new Sae({ cfg: contents.cfg, weights: contents.weights, kernels: referenceKernels });
        return evaluateSae(sae, heldOut);
      };
      const start = initTrainState({ x: data, y: data }, s);
      const before = arch === "batchtopk" ? null : evaluate(start);
      const end = run(data, s);
      const after = evaluate(end) as ReturnType<typeof evaluateSae>;
      assert.ok(after.explainedVariance > 0.8, `explained variance ${after.explainedVariance}`);
      if (before && typeof before !== "number")
        assert.ok(
          after.explainedVariance > before.explainedVariance + 0.3,
          `from ${before.explainedVariance}`,
        );
      if (arch === "topk") assert.ok(after.l0 <= 2);
    });
  }
});
