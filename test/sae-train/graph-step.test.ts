/**
 * The one-graph training step (onnxruntime) against `batchLossAndGrads`, the step's definition, run in float64:
 * loss, every gradient, L0 and the fired latents, for TopK, BatchTopK and JumpReLU, an SAE and a transcoder
 * (other widths, b_dec not subtracted from the input), with and without dead latents (the graph with and
 * without AuxK), with k_aux capped at d_out / 2 and below it; JumpReLU with a band wide enough that its
 * threshold gradient has many terms. step-reference.test.ts also holds the TopK graph, over 8 training steps,
 * to a dense float64 statement written from the definitions.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { graphBatchStep } from "../../src/sae-train/graph-step.ts";
import {
  batchLossAndGrads,
  type LossSettings,
  type ParamName,
  type SaeDims,
  type SaeParams,
} from "../../src/sae-train/sae-loss.ts";
import { FLOAT32_OPS, stepEngine } from "../../src/sae-train/trainer.ts";
import { createOnnxKernels } from "../../src/tensor/onnx-kernels.ts";
import { referenceKernels } from "../../src/tensor/reference-kernels.ts";
import { mulberry32, randn } from "../../src/util/random.ts";
import { F64, relErr } from "../helpers/float64-step.ts";

function randomArray(n: number, rng: () => number, scale: number, shift = 0): Float32Array {
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = randn(rng) * scale + shift;
  return a;
}

function params(dims: SaeDims, rng: () => number, jumprelu = false): SaeParams {
  return {
    W_enc: randomArray(dims.dIn * dims.dSae, rng, 0.4),
    b_enc: randomArray(dims.dSae, rng, 0.1),
    W_dec: randomArray(dims.dSae * dims.dOut, rng, 0.3),
    b_dec: randomArray(dims.dOut, rng, 0.2),
    // θ = exp(log θ) around 0.3–0.8: some pre-activations above, some within the band.
    ...(jumprelu ? { log_threshold: randomArray(dims.dSae, rng, 0.3, -0.8) } : {}),
  };
}

const to64 = (p: SaeParams): SaeParams<Float64Array> => ({
  W_enc: Float64Array.from(p.W_enc),
  b_enc: Float64Array.from(p.b_enc),
  W_dec: Float64Array.from(p.W_dec),
  b_dec: Float64Array.from(p.b_dec),
  ...(p.log_threshold ? { log_threshold: Float64Array.from(p.log_threshold) } : {}),
});

const settings = (over: Partial<LossSettings> = {}): LossSettings => ({
  architecture: "topk",
  k: 4,
  l1: 0,
  bandwidth: 0.001,
  auxCoefficient: 1 / 8,
  applyBDecToInput: true,
  ...over,
});

const kernels = createOnnxKernels();
const step = graphBatchStep(kernels);

interface Case {
  name: string;
  dims: SaeDims;
  rows: number;
  s: LossSettings;
  /** Dead latents: every n-th (0: none). */
  deadEvery: number;
}

/** An SAE's widths and batch, and a transcoder's (other input and output widths). */
const SAE = { dims: { dIn: 16, dSae: 96, dOut: 16 }, rows: 64 };
const TRANSCODER = { dims: { dIn: 12, dSae: 60, dOut: 20 }, rows: 48 };

const CASES: Case[] = [
  {
    name: "SAE, a quarter dead (k_aux = d_out / 2)",
    ...SAE,
    s: settings(),
    deadEvery: 4,
  },
  {
    name: "SAE, 3 dead (k_aux = 3 < d_out / 2)",
    ...SAE,
    s: settings(),
    deadEvery: 32,
  },
  {
    name: "SAE, none dead (no AuxK)",
    ...SAE,
    s: settings(),
    deadEvery: 0,
  },
  {
    name: "transcoder 12 → 20, b_dec not on the input, a third dead",
    ...TRANSCODER,
    s: settings({ applyBDecToInput: false, k: 6 }),
    deadEvery: 3,
  },
  {
    name: "BatchTopK SAE, a quarter dead",
    ...SAE,
    s: settings({ architecture: "batchtopk" }),
    deadEvery: 4,
  },
  {
    name: "BatchTopK transcoder 12 → 20, none dead, k·B above the positive pre-activations",
    ...TRANSCODER,
    s: settings({ architecture: "batchtopk", applyBDecToInput: false, k: 40 }),
    deadEvery: 0,
  },
  {
    name: "JumpReLU SAE (L0 penalty, band 0.2; dead latents play no part)",
    ...SAE,
    s: settings({ architecture: "jumprelu", l1: 0.05, bandwidth: 0.2 }),
    deadEvery: 4,
  },
  {
    name: "JumpReLU transcoder 12 → 20, b_dec not on the input",
    ...TRANSCODER,
    s: settings({ architecture: "jumprelu", applyBDecToInput: false, l1: 0.01, bandwidth: 0.1 }),
    deadEvery: 0,
  },
];

describe("the one-graph step equals the step's definition in float64", () => {
  for (const c of CASES) {
    test(c.name, () => {
      assert.ok(step, "onnxruntime kernels run whole graphs");
      const rng = mulberry32(c.rows + c.dims.dSae + c.deadEvery);
      const p = params(c.dims, rng, c.s.architecture === "jumprelu");
      const x = randomArray(c.rows * c.dims.dIn, rng, 1, 0.3);
      const y = c.dims.dIn === c.dims.dOut ? x : randomArray(c.rows * c.dims.dOut, rng, 1, -0.2);
      const dead = Uint8Array.from({ length: c.dims.dSae }, (_, j) =>
        c.deadEvery && j % c.deadEvery === 1 ? 1 : 0,
      );
      const got = step(p, { x, y, rows: c.rows, dead }, c.dims, c.s);
      assert.ok(got, "the graph takes TopK");
      const want = batchLossAndGrads(
        to64(p),
        { x: Float64Array.from(x), y: Float64Array.from(y), rows: c.rows, dead },
        c.dims,
        c.s,
        F64,
      );
      const auxK = c.s.architecture !== "jumprelu" && c.deadEvery > 0;
      assert.equal(got.aux > 0, auxK, "AuxK exactly when latents are dead (TopK, BatchTopK)");
      assert.equal(got.sparsity > 0, c.s.architecture === "jumprelu", "an L0 penalty for JumpReLU only");
      // The smallest kept pre-activation: float32 against float64 sums (pre-activations are of order 1).
      if (c.s.architecture === "batchtopk")
        assert.ok(Math.abs(got.minKept - want.minKept) < 1e-6, `minKept ${got.minKept} vs ${want.minKept}`);
      else assert.ok(Number.isNaN(got.minKept));
      for (const key of ["loss", "mse", "aux", "sparsity"] as const)
        assert.ok(
          Math.abs(got[key] - want[key]) <= 2e-6 * Math.max(want[key], 1e-6),
          `${key}: ${got[key]} vs ${want[key]}`,
        );
      assert.equal(got.l0, want.l0);
      assert.deepEqual([...got.fired], [...want.fired]);
      const names: ParamName[] = [
        "W_enc",
        "b_enc",
        "W_dec",
        "b_dec",
        ...(p.log_threshold ? (["log_threshold"] as const) : []),
      ];
      for (const n of names) {
        assert.ok(want.grads[n] && got.grads[n], n);
        const e = relErr(got.grads[n]!, want.grads[n]!, 1e-6);
        assert.ok(e < 1e-5, `${n}: relative error ${e}`);
      }
    });
  }

  test("standard SAEs and the reference kernels take the TypeScript loops", () => {
    assert.ok(step);
    const dims = { dIn: 4, dSae: 8, dOut: 4 };
    const p = params(dims, mulberry32(1));
    const x = new Float32Array(8 * 4).fill(1);
    assert.equal(step(p, { x, y: x, rows: 8 }, dims, settings({ architecture: "standard" })), null);
    assert.equal(graphBatchStep(referenceKernels), null);
    assert.equal(FLOAT32_OPS(referenceKernels).batchStep, undefined);
    assert.equal(FLOAT32_OPS(kernels, { graph: false }).batchStep, undefined);
  });
});

describe("which step a run took", () => {
  test("stepEngine names the graph exactly where the ops would take it", () => {
    const onnx = FLOAT32_OPS(kernels);
    assert.equal(stepEngine(onnx, { architecture: "topk" }), "onnxruntime graph");
    assert.equal(stepEngine(onnx, { architecture: "batchtopk" }), "onnxruntime graph");
    assert.equal(stepEngine(onnx, { architecture: "jumprelu" }), "onnxruntime graph");
    assert.equal(stepEngine(onnx, { architecture: "standard" }), "TypeScript loops");
    assert.equal(
      stepEngine(FLOAT32_OPS(kernels, { graph: false }), { architecture: "topk" }),
      "TypeScript loops",
    );
    assert.equal(stepEngine(FLOAT32_OPS(referenceKernels), { architecture: "topk" }), "TypeScript loops");
  });
});
