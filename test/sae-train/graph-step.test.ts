/**
 * The one-graph TopK step (onnxruntime) against `batchLossAndGrads`, the step's definition, run in float64:
 * loss, every gradient, L0 and the fired latents, for an SAE and a transcoder (other widths, b_dec not
 * subtracted from the input), with and without dead latents (the graph with and without AuxK), with k_aux
 * capped at d_out / 2 and below it. step-reference.test.ts also holds the graph, over 8 training steps, to a
 * dense float64 statement written from the definitions.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { graphBatchStep } from "../../src/sae-train/graph-step.ts";
import {
  type ArrayOps,
  batchLossAndGrads,
  type LossSettings,
  type SaeDims,
  type SaeParams,
} from "../../src/sae-train/sae-loss.ts";
import { FLOAT32_OPS } from "../../src/sae-train/trainer.ts";
import { createOnnxKernels } from "../../src/tensor/onnx-kernels.ts";
import { referenceKernels } from "../../src/tensor/reference-kernels.ts";
import { mulberry32, randn } from "../../src/util/random.ts";

const F64: ArrayOps<Float64Array> = {
  zeros: (n) => new Float64Array(n),
  matmul(a, b, m, k, n) {
    const out = new Float64Array(m * n);
    for (let i = 0; i < m; i++)
      for (let p = 0; p < k; p++) for (let j = 0; j < n; j++) out[i * n + j] += a[i * k + p] * b[p * n + j];
    return out;
  },
};

function randomArray(n: number, rng: () => number, scale: number, shift = 0): Float32Array {
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = randn(rng) * scale + shift;
  return a;
}

function params(dims: SaeDims, rng: () => number): SaeParams {
  return {
    W_enc: randomArray(dims.dIn * dims.dSae, rng, 0.4),
    b_enc: randomArray(dims.dSae, rng, 0.1),
    W_dec: randomArray(dims.dSae * dims.dOut, rng, 0.3),
    b_dec: randomArray(dims.dOut, rng, 0.2),
  };
}

const to64 = (p: SaeParams): SaeParams<Float64Array> => ({
  W_enc: Float64Array.from(p.W_enc),
  b_enc: Float64Array.from(p.b_enc),
  W_dec: Float64Array.from(p.W_dec),
  b_dec: Float64Array.from(p.b_dec),
});

/** Largest |a − b| relative to the largest |b|. */
function relErr(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let diff = 0;
  let scale = 1e-6;
  for (let i = 0; i < b.length; i++) {
    diff = Math.max(diff, Math.abs(a[i] - b[i]));
    scale = Math.max(scale, Math.abs(b[i]));
  }
  return diff / scale;
}

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

const CASES: Case[] = [
  {
    name: "SAE, a quarter dead (k_aux = d_out / 2)",
    dims: { dIn: 16, dSae: 96, dOut: 16 },
    rows: 64,
    s: settings(),
    deadEvery: 4,
  },
  {
    name: "SAE, 3 dead (k_aux = 3 < d_out / 2)",
    dims: { dIn: 16, dSae: 96, dOut: 16 },
    rows: 64,
    s: settings(),
    deadEvery: 32,
  },
  {
    name: "SAE, none dead (no AuxK)",
    dims: { dIn: 16, dSae: 96, dOut: 16 },
    rows: 64,
    s: settings(),
    deadEvery: 0,
  },
  {
    name: "transcoder 12 → 20, b_dec not on the input, a third dead",
    dims: { dIn: 12, dSae: 60, dOut: 20 },
    rows: 48,
    s: settings({ applyBDecToInput: false, k: 6 }),
    deadEvery: 3,
  },
];

describe("the one-graph TopK step equals the step's definition in float64", () => {
  for (const c of CASES) {
    test(c.name, () => {
      assert.ok(step, "onnxruntime kernels run whole graphs");
      const rng = mulberry32(c.rows + c.dims.dSae + c.deadEvery);
      const p = params(c.dims, rng);
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
      assert.equal(got.aux > 0, c.deadEvery > 0, "AuxK exactly when latents are dead");
      for (const key of ["loss", "mse", "aux"] as const)
        assert.ok(
          Math.abs(got[key] - want[key]) <= 2e-6 * Math.max(want[key], 1e-6),
          `${key}: ${got[key]} vs ${want[key]}`,
        );
      assert.equal(got.l0, want.l0);
      assert.deepEqual([...got.fired], [...want.fired]);
      for (const n of ["W_enc", "b_enc", "W_dec", "b_dec"] as const) {
        const e = relErr(got.grads[n], want.grads[n]!);
        assert.ok(e < 1e-5, `${n}: relative error ${e}`);
      }
    });
  }

  test("other architectures and the reference kernels take the TypeScript loops", () => {
    assert.ok(step);
    const dims = { dIn: 4, dSae: 8, dOut: 4 };
    const p = params(dims, mulberry32(1));
    const x = new Float32Array(8 * 4).fill(1);
    for (const architecture of ["batchtopk", "jumprelu", "standard"] as const)
      assert.equal(step(p, { x, y: x, rows: 8 }, dims, settings({ architecture })), null, architecture);
    assert.equal(graphBatchStep(referenceKernels), null);
    assert.equal(FLOAT32_OPS(referenceKernels).batchStep, undefined);
    assert.equal(FLOAT32_OPS(kernels, { graph: false }).batchStep, undefined);
  });
});
