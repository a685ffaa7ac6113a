/**
 * The hand-written SAE / transcoder gradients against central finite differences in float64, the AuxK
 * term against an independent re-statement of it, the JumpReLU threshold's straight-through gradient
 * against its formula, and the latent selection of each architecture against sorting.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import {
  activeLatents,
  batchLossAndGrads,
  type LossSettings,
  PARAM_NAMES,
  type SaeDims,
  type SaeParams,
  type TrainArchitecture,
} from "../../src/sae-train/sae-loss.ts";
import { mulberry32, randn } from "../../src/util/random.ts";
import { F64 } from "../helpers/float64-step.ts";

function randomArray(n: number, rng: () => number, scale = 1): Float64Array {
  return Float64Array.from({ length: n }, () => randn(rng) * scale);
}

function problem(dims: SaeDims, rows: number, seed: number, jumprelu = false) {
  const rng = mulberry32(seed);
  const p: SaeParams<Float64Array> = {
    W_enc: randomArray(dims.dIn * dims.dSae, rng, 0.5),
    b_enc: randomArray(dims.dSae, rng, 0.3),
    W_dec: randomArray(dims.dSae * dims.dOut, rng, 0.5),
    b_dec: randomArray(dims.dOut, rng, 0.2),
  };
  if (jumprelu) p.log_threshold = Float64Array.from({ length: dims.dSae }, () => Math.log(0.2 + 0.3 * rng()));
  const x = randomArray(rows * dims.dIn, rng);
  const y = dims.dOut === dims.dIn ? x : randomArray(rows * dims.dOut, rng);
  return { p, x, y };
}

function settings(architecture: TrainArchitecture, over: Partial<LossSettings> = {}): LossSettings {
  return {
    architecture,
    k: 3,
    l1: 0.05,
    bandwidth: 0.05,
    auxCoefficient: 0.5,
    applyBDecToInput: true,
    ...over,
  };
}

/** ∂f/∂p by central differences, one entry at a time. */
function finiteDifference(
  p: SaeParams<Float64Array>,
  f: (p: SaeParams<Float64Array>) => number,
  name: keyof SaeParams<Float64Array>,
  h = 1e-6,
): Float64Array {
  const arr = p[name]!;
  const out = new Float64Array(arr.length);
  for (let i = 0; i < arr.length; i++) {
    const keep = arr[i];
    arr[i] = keep + h;
    const up = f(p);
    arr[i] = keep - h;
    const down = f(p);
    arr[i] = keep;
    out[i] = (up - down) / (2 * h);
  }
  return out;
}

function assertClose(actual: Float64Array, expected: Float64Array, what: string, tol = 1e-6): void {
  let scale = 1e-3;
  for (const v of expected) scale = Math.max(scale, Math.abs(v));
  for (let i = 0; i < expected.length; i++)
    assert.ok(
      Math.abs(actual[i] - expected[i]) <= tol * scale,
      `${what}[${i}]: analytic ${actual[i]} vs finite difference ${expected[i]}`,
    );
}

describe("SAE gradients against finite differences (float64)", () => {
  const cases: { name: string; arch: TrainArchitecture; dims: SaeDims; over?: Partial<LossSettings> }[] = [
    { name: "topk SAE", arch: "topk", dims: { dIn: 6, dSae: 10, dOut: 6 } },
    { name: "batchtopk SAE", arch: "batchtopk", dims: { dIn: 6, dSae: 10, dOut: 6 } },
    {
      name: "standard SAE (L1 weighted by decoder norms)",
      arch: "standard",
      dims: { dIn: 5, dSae: 8, dOut: 5 },
    },
    {
      name: "topk transcoder (d_in 5 → d_out 3, no b_dec on the input)",
      arch: "topk",
      dims: { dIn: 5, dSae: 9, dOut: 3 },
      over: { applyBDecToInput: false },
    },
  ];
  for (const c of cases) {
    test(c.name, () => {
      const { p, x, y } = problem(c.dims, 7, 11);
      const s = settings(c.arch, c.over);
      const loss = (q: SaeParams<Float64Array>) =>
        batchLossAndGrads(q, { x, y: c.dims.dIn === c.dims.dOut ? x : y, rows: 7 }, c.dims, s, F64).loss;
      const { grads, l0 } = batchLossAndGrads(
        p,
        { x, y: c.dims.dIn === c.dims.dOut ? x : y, rows: 7 },
        c.dims,
        s,
        F64,
      );
      assert.ok(l0 > 0, "some latents are active");
      for (const name of ["W_enc", "b_enc", "W_dec", "b_dec"] as const)
        assertClose(grads[name]!, finiteDifference(p, loss, name), `${c.name} ${name}`);
    });
  }

  test("jumprelu: every weight but the threshold (whose gradient is straight-through)", () => {
    const dims = { dIn: 5, dSae: 8, dOut: 5 };
    const { p, x } = problem(dims, 6, 5, true);
    const s = settings("jumprelu", { bandwidth: 1e-9 });
    const loss = (q: SaeParams<Float64Array>) => {
      const r = batchLossAndGrads(q, { x, y: x, rows: 6 }, dims, s, F64);
      return r.mse; // the L0 term is flat in every weight but the threshold
    };
    const { grads } = batchLossAndGrads(p, { x, y: x, rows: 6 }, dims, s, F64);
    for (const name of ["W_enc", "b_enc", "W_dec", "b_dec"] as const)
      assertClose(grads[name]!, finiteDifference(p, loss, name), `jumprelu ${name}`);
  });
});

describe("AuxK for dead latents", () => {
  test("its gradient equals finite differences of the loss plus the aux term with the residual held fixed", () => {
    const dims = { dIn: 6, dSae: 12, dOut: 6 };
    const rows = 5;
    const { p, x } = problem(dims, rows, 3);
    const s = settings("topk", { k: 2 });
    const dead = new Uint8Array(dims.dSae);
    for (const j of [1, 4, 5, 7, 9, 10]) dead[j] = 1;
    const plain = (q: SaeParams<Float64Array>) => batchLossAndGrads(q, { x, y: x, rows }, dims, s, F64).loss;
    // The residual x − x̂ at the current weights, a constant of the aux term.
    const resid0 = (() => {
      const { pre, acts } = encodeF64(p, x, rows, dims, s);
      const xHat = new Float64Array(rows * dims.dIn);
      for (let r = 0; r < rows; r++)
        for (let i = 0; i < dims.dIn; i++) {
          let v = p.b_dec[i];
          for (let j = 0; j < dims.dSae; j++) v += acts[r * dims.dSae + j] * p.W_dec[j * dims.dOut + i];
          xHat[r * dims.dIn + i] = v;
        }
      void pre;
      return Float64Array.from(x, (v, t) => v - xHat[t]);
    })();
    // Independent statement: k_aux = d/2 = 3, scale = coef · min(6 / 3, 1); the 3 largest dead pre-activations.
    const auxTerm = (q: SaeParams<Float64Array>) => {
      const { pre } = encodeF64(q, x, rows, dims, s);
      let total = 0;
      for (let r = 0; r < rows; r++) {
        const cand = [...dead.keys()]
          .filter((j) => dead[j])
          .sort((a, b) => pre[r * 12 + b] - pre[r * 12 + a]);
        const top = cand.slice(0, 3);
        for (let i = 0; i < dims.dIn; i++) {
          let e = -resid0[r * dims.dIn + i];
          for (const j of top) e += pre[r * 12 + j] * q.W_dec[j * dims.dOut + i];
          total += e * e;
        }
      }
      return (s.auxCoefficient * Math.min(6 / 3, 1) * total) / rows;
    };
    const full = batchLossAndGrads(p, { x, y: x, rows, dead }, dims, s, F64);
    assert.ok(Math.abs(full.aux - auxTerm(p)) < 1e-12 * Math.max(1, full.aux), "aux value");
    assert.ok(full.aux > 0);
    for (const name of ["W_enc", "b_enc", "W_dec", "b_dec"] as const) {
      const a = finiteDifference(p, plain, name);
      const b = finiteDifference(p, auxTerm, name);
      assertClose(
        full.grads[name]!,
        Float64Array.from(a, (v, i) => v + b[i]),
        `aux ${name}`,
      );
    }
  });
});

/** Dense float64 encoder for the tests: pre-activations and topk activations (as the SAELens formula). */
function encodeF64(
  p: SaeParams<Float64Array>,
  x: Float64Array,
  rows: number,
  dims: SaeDims,
  s: LossSettings,
) {
  const pre = new Float64Array(rows * dims.dSae);
  const acts = new Float64Array(rows * dims.dSae);
  for (let r = 0; r < rows; r++) {
    for (let j = 0; j < dims.dSae; j++) {
      let v = p.b_enc[j];
      for (let i = 0; i < dims.dIn; i++)
        v += (x[r * dims.dIn + i] - (s.applyBDecToInput ? p.b_dec[i] : 0)) * p.W_enc[i * dims.dSae + j];
      pre[r * dims.dSae + j] = v;
    }
    const order = [...Array(dims.dSae).keys()].sort(
      (a, b) => pre[r * dims.dSae + b] - pre[r * dims.dSae + a],
    );
    for (const j of order.slice(0, s.k)) acts[r * dims.dSae + j] = Math.max(0, pre[r * dims.dSae + j]);
  }
  return { pre, acts };
}

describe("JumpReLU threshold", () => {
  test("the straight-through gradient: −Σ (θ/ε)·∂L/∂f − l1/(B·ε) over entries within ε/2 of θ, times θ", () => {
    const dims = { dIn: 4, dSae: 6, dOut: 4 };
    const rows = 40;
    const { p, x } = problem(dims, rows, 9, true);
    const s = settings("jumprelu", { bandwidth: 0.4, l1: 0.3 });
    const { grads } = batchLossAndGrads(p, { x, y: x, rows }, dims, s, F64);
    // Independent: recompute x̂ densely, ∂L/∂f = (2/B)(x̂ − x)·W_dec[j].
    const pre = new Float64Array(rows * dims.dSae);
    for (let r = 0; r < rows; r++)
      for (let j = 0; j < dims.dSae; j++) {
        let v = p.b_enc[j];
        for (let i = 0; i < dims.dIn; i++) v += (x[r * 4 + i] - p.b_dec[i]) * p.W_enc[i * dims.dSae + j];
        pre[r * dims.dSae + j] = v;
      }
    let near = 0;
    for (let j = 0; j < dims.dSae; j++) {
      const theta = Math.exp(p.log_threshold![j]);
      let g = 0;
      for (let r = 0; r < rows; r++) {
        const v = pre[r * dims.dSae + j];
        if (Math.abs(v - theta) >= s.bandwidth / 2) continue;
        near++;
        let dfj = 0;
        for (let i = 0; i < dims.dIn; i++) {
          let xh = p.b_dec[i];
          for (let q = 0; q < dims.dSae; q++) {
            const u = pre[r * dims.dSae + q];
            if (u > Math.exp(p.log_threshold![q])) xh += u * p.W_dec[q * 4 + i];
          }
          dfj += (2 / rows) * (xh - x[r * 4 + i]) * p.W_dec[j * 4 + i];
        }
        g += -(theta / s.bandwidth) * dfj - s.l1 / (rows * s.bandwidth);
      }
      assert.ok(Math.abs(grads.log_threshold![j] - g * theta) < 1e-10, `latent ${j}`);
    }
    assert.ok(near > 0, "some pre-activations fall inside the kernel");
  });
});

describe("which latents are active", () => {
  const rng = mulberry32(1);
  const rows = 30;
  const dSae = 20;
  const pre = randomArray(rows * dSae, rng);
  test("topk: the k largest of each row, kept only where positive", () => {
    const a = activeLatents(pre, rows, dSae, { architecture: "topk", k: 4 }, undefined, F64);
    for (let r = 0; r < rows; r++) {
      const row = [...pre.subarray(r * dSae, (r + 1) * dSae)];
      const want = [...row.keys()]
        .sort((x, y) => row[y] - row[x])
        .slice(0, 4)
        .filter((j) => row[j] > 0)
        .sort((x, y) => x - y);
      assert.deepEqual([...a.index.subarray(a.rowStart[r], a.rowStart[r + 1])], want, `row ${r}`);
    }
  });
  test("batchtopk: the k·B largest positive values of the whole batch", () => {
    const a = activeLatents(pre, rows, dSae, { architecture: "batchtopk", k: 3 }, undefined, F64);
    const sorted = [...pre].filter((v) => v > 0).sort((x, y) => y - x);
    assert.equal(a.index.length, 90);
    assert.equal(a.minKept, sorted[89]);
    const kept = [...a.value].sort((x, y) => y - x);
    assert.deepEqual(kept, sorted.slice(0, 90));
  });
  test("jumprelu: pre > θ; standard: pre > 0", () => {
    const logT = Float64Array.from({ length: dSae }, (_, j) => Math.log(0.1 + 0.05 * j));
    const a = activeLatents(pre, rows, dSae, { architecture: "jumprelu", k: 0 }, logT, F64);
    const b = activeLatents(pre, rows, dSae, { architecture: "standard", k: 0 }, undefined, F64);
    let nj = 0;
    let ns = 0;
    for (let t = 0; t < pre.length; t++) {
      if (pre[t] > 0.1 + 0.05 * (t % dSae)) nj++;
      if (pre[t] > 0) ns++;
    }
    assert.equal(a.index.length, nj);
    assert.equal(b.index.length, ns);
  });
});

test("PARAM_NAMES lists the SAELens tensor names the trainer saves", () => {
  assert.deepEqual([...PARAM_NAMES].slice(0, 4), ["W_enc", "b_enc", "W_dec", "b_dec"]);
});
