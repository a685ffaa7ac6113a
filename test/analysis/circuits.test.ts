import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import {
  compositionScores,
  fullOvCircuit,
  fullQkCircuit,
  ovCircuit,
  qkCircuit,
} from "../../src/analysis/circuits.ts";
import {
  choleskyUpper,
  FactoredMatrix,
  gram,
  type Mat,
  mat,
  matmul,
  thinQr,
  transpose,
} from "../../src/analysis/factored-matrix.ts";
import { HookedTransformer } from "../../src/model/hooked-transformer.ts";
import { Tensor } from "../../src/tensor/tensor.ts";
import { mulberry32, randn } from "../../src/util/random.ts";
import { loadCheckpoint, makeRandomCheckpoint } from "../../src/weights/checkpoint.ts";
import type { ModelConfig } from "../../src/weights/config.ts";
import { gpt2Config } from "../../src/weights/families/gpt2.ts";

const rng = mulberry32(11);
const randMat = (r: number, c: number): Mat =>
  mat(
    r,
    c,
    Array.from({ length: r * c }, () => randn(rng)),
  );
const frob = (m: Mat) => Math.hypot(...m.data);

function close(a: ArrayLike<number>, b: ArrayLike<number>, tol: number, what: string): void {
  assert.equal(a.length, b.length, `${what}: lengths differ`);
  for (let i = 0; i < a.length; i++)
    assert.ok(
      Math.abs(a[i] - b[i]) <= tol * Math.max(1, Math.abs(b[i])),
      `${what}[${i}]: ${a[i]} vs ${b[i]}`,
    );
}

/**
 * Independent singular values: eigenvalues of the dense Gram matrix (AB)^T AB by power iteration with
 * deflation (no QR, no SVD routine).
 */
function singularValuesByPowerIteration(m: Mat, count: number): number[] {
  const G = gram(m);
  const n = G.rows;
  const out: number[] = [];
  const local = mulberry32(5);
  for (let c = 0; c < count; c++) {
    let v = Float64Array.from({ length: n }, () => randn(local));
    let lambda = 0;
    for (let it = 0; it < 3000; it++) {
      const w = matmul(G, mat(n, 1, v)).data;
      const norm = Math.hypot(...w);
      if (norm === 0) break;
      lambda = norm;
      v = w.map((x) => x / norm);
    }
    out.push(Math.sqrt(Math.max(lambda, 0)));
    // Deflate: G -= lambda v v^T.
    for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) G.data[i * n + j] -= lambda * v[i] * v[j];
  }
  return out;
}

describe("FactoredMatrix", () => {
  const A = randMat(30, 4);
  const B = randMat(4, 25);
  const f = new FactoredMatrix(A, B);
  const dense = matmul(A, B);

  it("AB, shape, transpose and products equal the dense computations", () => {
    assert.deepEqual(f.shape, [30, 25]);
    close(f.AB.data, dense.data, 1e-12, "AB");
    close(f.T.AB.data, transpose(dense).data, 1e-12, "T");
    const M = randMat(25, 7);
    close(f.matmul(M).AB.data, matmul(dense, M).data, 1e-10, "AB @ M");
    const L = randMat(3, 30);
    close(f.leftMatmul(L).AB.data, matmul(L, dense).data, 1e-10, "L @ AB");
    const g = new FactoredMatrix(randMat(25, 6), randMat(6, 9));
    close(f.matmul(g).AB.data, matmul(dense, g.AB).data, 1e-10, "factored @ factored");
    assert.equal(f.matmul(g).mdim, 4);
    const v = Array.from({ length: 25 }, () => randn(rng));
    close(f.mulVector(v), matmul(dense, mat(25, 1, v)).data, 1e-10, "AB v");
    const u = Array.from({ length: 30 }, () => randn(rng));
    close(f.vectorMul(u), matmul(mat(1, 30, u), dense).data, 1e-10, "u AB");
  });

  it("Frobenius norms (own and of a product) equal the dense norms", () => {
    assert.ok(Math.abs(f.norm() - frob(dense)) < 1e-9 * frob(dense));
    const g = new FactoredMatrix(randMat(25, 3), randMat(3, 12));
    const p = matmul(dense, g.AB);
    assert.ok(Math.abs(f.productNorm(g) - frob(p)) < 1e-9 * frob(p));
  });

  it("singular values from the factors equal those of the dense product (power iteration on the Gram)", () => {
    const svd = f.svd();
    assert.equal(svd.S.length, 4);
    close(svd.S, singularValuesByPowerIteration(dense, 4), 1e-6, "singular values");
    // U diag(S) V^T rebuilds the product.
    const US = mat(
      30,
      4,
      svd.U.data.map((x, i) => x * svd.S[i % 4]),
    );
    close(matmul(US, transpose(svd.V)).data, dense.data, 1e-9, "U S V^T");
    // A wide left factor (k > m) goes through the absorbing path.
    const wide = new FactoredMatrix(randMat(3, 8), randMat(8, 10));
    close(wide.singularValues(), singularValuesByPowerIteration(wide.AB, 3), 1e-6, "wide factor");
  });

  it("thin QR: Q R rebuilds the matrix, Q has orthonormal columns; Cholesky of the Gram gives the same R up to signs", () => {
    const a = randMat(40, 5);
    const { R, applyQ } = thinQr(a);
    for (let i = 0; i < 5; i++) for (let j = 0; j < i; j++) assert.equal(R.data[i * 5 + j], 0);
    close(applyQ(R).data, a.data, 1e-12, "Q R");
    const Q = applyQ(
      mat(
        5,
        5,
        Array.from({ length: 25 }, (_, i) => (i % 6 === 0 ? 1 : 0)),
      ),
    );
    const eye = Array.from({ length: 25 }, (_, i) => (i % 6 === 0 ? 1 : 0));
    close(gram(Q).data, eye, 1e-12, "Q^T Q");
    const C = choleskyUpper(gram(a));
    assert.ok(C);
    close(C.data.map(Math.abs), R.data.map(Math.abs), 1e-10, "|chol| vs |R|");
    // A repeated column makes the Gram singular: no Cholesky factor (callers fall back to the QR).
    const rep = mat(6, 2, [1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6]);
    assert.equal(choleskyUpper(gram(rep)), null);
  });

  it("eigenvalues of a square product come from B A", () => {
    const sq = new FactoredMatrix(randMat(12, 2), randMat(2, 12));
    const { real, imag } = sq.eigenvalues();
    // The trace of A B is the sum of its eigenvalues (the other 10 are 0).
    let trace = 0;
    for (let i = 0; i < 12; i++) trace += sq.AB.data[i * 12 + i];
    assert.ok(Math.abs(real[0] + real[1] - trace) < 1e-9 * Math.max(1, Math.abs(trace)));
    assert.ok(Math.abs(imag[0] + imag[1]) < 1e-9);
  });
});

describe("circuits and composition scores on a random model", () => {
  const root = mkdtempSync(join(tmpdir(), "cs-circuits-"));
  after(() => rmSync(root, { recursive: true, force: true }));
  const cfg: ModelConfig = gpt2Config({
    nLayers: 3,
    nHeads: 2,
    dModel: 16,
    dHead: 4,
    dMlp: 32,
    nCtx: 8,
    dVocab: 40,
    lnEps: 1e-5,
    act: "gelu_new",
  });
  makeRandomCheckpoint(root, cfg, { seed: 2, std: 0.2 });
  const model = HookedTransformer.fromCheckpoint(loadCheckpoint(root), { backend: "reference" });
  const w = model.weights;
  const headMat = (t: { data: Float32Array; shape: readonly number[] }, h: number) => {
    const [, r, c] = t.shape;
    return mat(r, c, t.data.subarray(h * r * c, (h + 1) * r * c));
  };

  // Without kernels everything is float64 (exact to 1e-9); with them the big products are float32.
  const paths = [
    { name: "float64 (no kernels)", m: { cfg: model.cfg, weights: model.weights }, tol: 1e-9 },
    { name: "float32 kernels", m: model, tol: 1e-5 },
  ];

  it("QK, OV and full circuits equal the dense weight products", () => {
    const blk = w.blocks[1];
    const WQ = headMat(blk.W_Q, 1);
    const WK = headMat(blk.W_K, 1);
    const WV = headMat(blk.W_V, 1);
    const WO = headMat(blk.W_O, 1);
    const WE = mat(cfg.dVocab, cfg.dModel, w.W_E.data);
    const WU = mat(cfg.dModel, cfg.dVocab, w.W_U.data);
    close(qkCircuit(model, 1, 1).AB.data, matmul(WQ, transpose(WK)).data, 1e-9, "QK");
    close(ovCircuit(model, 1, 1).AB.data, matmul(WV, WO).data, 1e-9, "OV");
    const fullQK = matmul(matmul(WE, matmul(WQ, transpose(WK))), transpose(WE));
    const fullOV = matmul(matmul(WE, matmul(WV, WO)), WU);
    for (const { name, m, tol } of paths) {
      close(fullQkCircuit(m, 1, 1).AB.data, fullQK.data, tol, `full QK, ${name}`);
      close(fullOvCircuit(m, 1, 1).AB.data, fullOV.data, tol, `full OV, ${name}`);
    }
    assert.throws(() => qkCircuit(model, 3, 0), /Layer 3 is out of range/);
  });

  it("composition scores are ||W_A W_B||_F / (||W_A|| ||W_B||) from dense products, zero unless L1 < L2", () => {
    const { nLayers: L, nHeads: H } = cfg;
    const ov = (l: number, h: number) => matmul(headMat(w.blocks[l].W_V, h), headMat(w.blocks[l].W_O, h));
    const qk = (l: number, h: number) =>
      matmul(headMat(w.blocks[l].W_Q, h), transpose(headMat(w.blocks[l].W_K, h)));
    const right = { Q: qk, K: (l: number, h: number) => transpose(qk(l, h)), V: ov };
    for (const mode of ["Q", "K", "V"] as const)
      for (const { name, m, tol } of paths) {
        const s = compositionScores(m, mode);
        for (let l1 = 0; l1 < L; l1++)
          for (let h1 = 0; h1 < H; h1++)
            for (let l2 = 0; l2 < L; l2++)
              for (let h2 = 0; h2 < H; h2++) {
                const got = s[((l1 * H + h1) * L + l2) * H + h2];
                if (l1 >= l2) {
                  assert.equal(got, 0);
                  continue;
                }
                const a = ov(l1, h1);
                const b = right[mode](l2, h2);
                const want = frob(matmul(a, b)) / (frob(a) * frob(b));
                assert.ok(
                  Math.abs(got - want) < tol,
                  `${name} ${mode} L${l1}H${h1}->L${l2}H${h2}: ${got} vs ${want}`,
                );
              }
      }
  });

  it("composition scores stay exact when a head's factor is rank-deficient (QR fallback of the Cholesky)", () => {
    // Head 0 of layer 1: W_V column 1 = column 0 (a singular W_V^T W_V) and W_K column 3 = column 2.
    const dup = (t: { data: Float32Array; shape: readonly number[] }, a: number, b: number) => {
      const d = Float32Array.from(t.data);
      const [, D, dh] = t.shape;
      for (let r = 0; r < D; r++) d[r * dh + b] = d[r * dh + a];
      return new Tensor(d, t.shape);
    };
    const blocks = w.blocks.map((b) => ({ ...b }));
    blocks[1].W_V = dup(w.blocks[1].W_V, 0, 1);
    blocks[1].W_K = dup(w.blocks[1].W_K, 2, 3);
    const m = { cfg: model.cfg, weights: { ...w, blocks } };
    const ov = matmul(headMat(blocks[1].W_V, 0), headMat(blocks[1].W_O, 0));
    const qk = matmul(headMat(blocks[2].W_Q, 1), transpose(headMat(blocks[2].W_K, 1)));
    const qk10 = matmul(headMat(blocks[1].W_Q, 0), transpose(headMat(blocks[1].W_K, 0)));
    const ov00 = matmul(headMat(w.blocks[0].W_V, 0), headMat(w.blocks[0].W_O, 0));
    const { nLayers: L, nHeads: H } = cfg;
    const at = (l1: number, h1: number, l2: number, h2: number) => ((l1 * H + h1) * L + l2) * H + h2;
    const score = (a: Mat, b: Mat) => frob(matmul(a, b)) / (frob(a) * frob(b));
    for (const mm of [m, { ...m, kernels: model.kernels }]) {
      const tol = "kernels" in mm ? 1e-5 : 1e-9;
      const s = compositionScores(mm, "Q");
      assert.ok(Math.abs(s[at(1, 0, 2, 1)] - score(ov, qk)) < tol, "singular left head");
      assert.ok(Math.abs(s[at(0, 0, 1, 0)] - score(ov00, qk10)) < tol, "singular right head");
    }
  });
});
