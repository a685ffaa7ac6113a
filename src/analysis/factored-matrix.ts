/**
 * TransformerLens' FactoredMatrix: a low-rank product A @ B ([m, k] @ [k, n]) kept as its factors, so
 * that circuits like W_E W_Q W_K^T W_E^T ([d_vocab, d_vocab], rank d_head) cost O((m + n) k^2), never m * n.
 * Float64 throughout (the analyses compare small norms). The tall QR is our own column-major Householder
 * (ml-matrix's generic QR took ~90 s on [50257, 64]); the k x k SVD/eigen come from ml-matrix (JAMA-derived).
 */
import { EigenvalueDecomposition, Matrix, SingularValueDecomposition } from "ml-matrix";
import type { Tensor } from "../tensor/tensor.ts";

/** A dense row-major float64 matrix. */
export interface Mat {
  rows: number;
  cols: number;
  data: Float64Array;
}

export function mat(rows: number, cols: number, data?: ArrayLike<number>): Mat {
  const d = data ? Float64Array.from(data) : new Float64Array(rows * cols);
  if (d.length !== rows * cols)
    throw new Error(`Matrix data has ${d.length} values but [${rows}, ${cols}] needs ${rows * cols}`);
  return { rows, cols, data: d };
}

/** A 2-D Tensor, or slice `index` of a 3-D one (e.g. head h of W_Q [H, D, dh]), as a Mat. */
export function matFromTensor(t: Tensor, index?: number): Mat {
  if (index === undefined) {
    if (t.ndim !== 2) throw new Error(`Expected a 2-D tensor, got [${t.shape.join(", ")}]`);
    return mat(t.shape[0], t.shape[1], t.data);
  }
  if (t.ndim !== 3) throw new Error(`Expected a 3-D tensor to index, got [${t.shape.join(", ")}]`);
  const [, r, c] = t.shape;
  return mat(r, c, t.data.subarray(index * r * c, (index + 1) * r * c));
}

export function matmul(a: Mat, b: Mat): Mat {
  if (a.cols !== b.rows) throw new Error(`Cannot multiply [${a.rows}, ${a.cols}] by [${b.rows}, ${b.cols}]`);
  const out = new Float64Array(a.rows * b.cols);
  for (let i = 0; i < a.rows; i++)
    for (let k = 0; k < a.cols; k++) {
      const v = a.data[i * a.cols + k];
      if (v === 0) continue;
      const bo = k * b.cols;
      const oo = i * b.cols;
      for (let j = 0; j < b.cols; j++) out[oo + j] += v * b.data[bo + j];
    }
  return { rows: a.rows, cols: b.cols, data: out };
}

export function transpose(a: Mat): Mat {
  const out = new Float64Array(a.data.length);
  for (let i = 0; i < a.rows; i++)
    for (let j = 0; j < a.cols; j++) out[j * a.rows + i] = a.data[i * a.cols + j];
  return { rows: a.cols, cols: a.rows, data: out };
}

/** a^T a without forming the transpose: [cols, cols]. */
export function gram(a: Mat): Mat {
  const n = a.cols;
  const out = new Float64Array(n * n);
  for (let r = 0; r < a.rows; r++) {
    const o = r * n;
    for (let i = 0; i < n; i++) {
      const v = a.data[o + i];
      if (v === 0) continue;
      for (let j = 0; j < n; j++) out[i * n + j] += v * a.data[o + j];
    }
  }
  return { rows: n, cols: n, data: out };
}

function identity(n: number): Mat {
  const m = mat(n, n);
  for (let i = 0; i < n; i++) m.data[i * n + i] = 1;
  return m;
}

function toMl(a: Mat): Matrix {
  return Matrix.from1DArray(a.rows, a.cols, a.data);
}

function fromMl(m: Matrix): Mat {
  return mat(m.rows, m.columns, m.to1DArray());
}

/**
 * sum_{i in [from, to)} x[xo + i] y[yo + i], with four partial sums: a single running sum is bound by the
 * add latency, and these dots are most of a QR's time.
 */
function dot(x: Float64Array, xo: number, y: Float64Array, yo: number, from: number, to: number): number {
  let s0 = 0;
  let s1 = 0;
  let s2 = 0;
  let s3 = 0;
  let i = from;
  for (; i + 3 < to; i += 4) {
    s0 += x[xo + i] * y[yo + i];
    s1 += x[xo + i + 1] * y[yo + i + 1];
    s2 += x[xo + i + 2] * y[yo + i + 2];
    s3 += x[xo + i + 3] * y[yo + i + 3];
  }
  for (; i < to; i++) s0 += x[xo + i] * y[yo + i];
  return s0 + s1 + s2 + s3;
}

/**
 * Upper triangular R with R^T R = G for a symmetric positive definite G [n, n], or null when a pivot is
 * not clearly positive (G numerically singular): the caller then needs a QR of the underlying factor.
 */
export function choleskyUpper(G: Mat): Mat | null {
  const n = G.rows;
  if (G.cols !== n) throw new Error(`choleskyUpper needs a square matrix, got [${G.rows}, ${G.cols}]`);
  let maxDiag = 0;
  for (let i = 0; i < n; i++) maxDiag = Math.max(maxDiag, G.data[i * n + i]);
  const R = mat(n, n);
  const r = R.data;
  for (let j = 0; j < n; j++) {
    let p = G.data[j * n + j];
    for (let k = 0; k < j; k++) p -= r[k * n + j] * r[k * n + j];
    if (!(p > 1e-10 * maxDiag)) return null;
    const d = Math.sqrt(p);
    r[j * n + j] = d;
    for (let i = j + 1; i < n; i++) {
      let s = G.data[j * n + i];
      for (let k = 0; k < j; k++) s -= r[k * n + j] * r[k * n + i];
      r[j * n + i] = s / d;
    }
  }
  return R;
}

export interface ThinQr {
  /** [cols, cols] upper triangular, with R^T R = a^T a. */
  R: Mat;
  /** Q @ X for X [cols, r]: [rows, r] (Q [rows, cols] has orthonormal columns; never formed). */
  applyQ(X: Mat): Mat;
}

/**
 * Householder thin QR of a tall matrix (rows >= cols). Column-major storage keeps every inner loop a
 * contiguous stride-1 pass over one column, which is what makes [50257, 64] take a fraction of a second.
 */
export function thinQr(a: Mat): ThinQr {
  const { rows: m, cols: n } = a;
  if (m < n) throw new Error(`thinQr needs a tall matrix (rows >= cols), got [${m}, ${n}]`);
  const c = new Float64Array(m * n); // column j at c[j*m .. j*m+m); below the diagonal: reflector j
  for (let i = 0; i < m; i++) for (let j = 0; j < n; j++) c[j * m + i] = a.data[i * n + j];
  const diag = new Float64Array(n);
  const beta = new Float64Array(n); // H_j = I - beta_j v_j v_j^T; 0 means H_j = I
  for (let j = 0; j < n; j++) {
    const o = j * m;
    const s = dot(c, o, c, o, j, m);
    const x0 = c[o + j];
    if (s === 0) continue;
    // alpha takes the sign opposite to x0 so that v_j = x0 - alpha does not cancel.
    const alpha = x0 > 0 ? -Math.sqrt(s) : Math.sqrt(s);
    const v0 = x0 - alpha;
    c[o + j] = v0;
    diag[j] = alpha;
    beta[j] = 2 / (s - x0 * x0 + v0 * v0);
    for (let k = j + 1; k < n; k++) {
      const ok = k * m;
      const f = beta[j] * dot(c, o, c, ok, j, m);
      if (f === 0) continue;
      for (let i = j; i < m; i++) c[ok + i] -= f * c[o + i];
    }
  }
  const R = mat(n, n);
  for (let j = 0; j < n; j++) {
    for (let i = 0; i < j; i++) R.data[i * n + j] = c[j * m + i];
    R.data[j * n + j] = diag[j]; // 0 for an all-zero column (H_j = I)
  }
  const applyQ = (X: Mat): Mat => {
    if (X.rows !== n) throw new Error(`applyQ needs [${n}, r], got [${X.rows}, ${X.cols}]`);
    const r = X.cols;
    const y = new Float64Array(m); // one column of Q X at a time: H_0 H_1 ... H_{n-1} [x; 0]
    const out = new Float64Array(m * r);
    for (let col = 0; col < r; col++) {
      y.fill(0);
      for (let i = 0; i < n; i++) y[i] = X.data[i * r + col];
      for (let j = n - 1; j >= 0; j--) {
        if (beta[j] === 0) continue;
        const o = j * m;
        const f = beta[j] * dot(c, o, y, 0, j, m);
        for (let i = j; i < m; i++) y[i] -= f * c[o + i];
      }
      for (let i = 0; i < m; i++) out[i * r + col] = y[i];
    }
    return { rows: m, cols: r, data: out };
  };
  return { R, applyQ };
}

export interface Svd {
  /** [m, r] left singular vectors (columns). */
  U: Mat;
  /** [r] singular values, descending. */
  S: Float64Array;
  /** [n, r] right singular vectors (columns); the product is U diag(S) V^T. */
  V: Mat;
}

export class FactoredMatrix {
  private gramA: Mat | null = null;
  private gramBT: Mat | null = null;

  /** A [m, k], B [k, n]. */
  constructor(
    readonly A: Mat,
    readonly B: Mat,
  ) {
    if (A.cols !== B.rows)
      throw new Error(
        `FactoredMatrix factors do not chain: A is [${A.rows}, ${A.cols}], B is [${B.rows}, ${B.cols}]`,
      );
  }

  static fromTensors(A: Tensor, B: Tensor): FactoredMatrix {
    return new FactoredMatrix(matFromTensor(A), matFromTensor(B));
  }

  /** [m, n] of the product. */
  get shape(): [number, number] {
    return [this.A.rows, this.B.cols];
  }
  /** Inner dimension k (an upper bound on the rank). */
  get mdim(): number {
    return this.A.cols;
  }

  /** The dense product A @ B [m, n]. */
  get AB(): Mat {
    return matmul(this.A, this.B);
  }

  /** B @ A [k, k] (square matrices only): same nonzero eigenvalues as A @ B. */
  get BA(): Mat {
    if (this.A.rows !== this.B.cols)
      throw new Error(`BA needs a square FactoredMatrix, this is [${this.shape.join(", ")}]`);
    return matmul(this.B, this.A);
  }

  /** (A B)^T = B^T A^T. */
  get T(): FactoredMatrix {
    return new FactoredMatrix(transpose(this.B), transpose(this.A));
  }

  /** this @ other, factored, keeping the smaller of the two inner dimensions. */
  matmul(other: FactoredMatrix | Mat): FactoredMatrix {
    if (!(other instanceof FactoredMatrix)) return new FactoredMatrix(this.A, matmul(this.B, other));
    const mid = matmul(this.B, other.A); // [k1, k2]
    return this.mdim <= other.mdim
      ? new FactoredMatrix(this.A, matmul(mid, other.B))
      : new FactoredMatrix(matmul(this.A, mid), other.B);
  }

  /** m @ this. */
  leftMatmul(m: Mat): FactoredMatrix {
    return new FactoredMatrix(matmul(m, this.A), this.B);
  }

  /** (A B) v for v [n]. */
  mulVector(v: ArrayLike<number>): Float64Array {
    return matmul(this.A, matmul(this.B, mat(v.length, 1, v))).data;
  }

  /** v (A B) for v [m]. */
  vectorMul(v: ArrayLike<number>): Float64Array {
    return matmul(matmul(mat(1, v.length, v), this.A), this.B).data;
  }

  private grams(): { gA: Mat; gB: Mat } {
    this.gramA ??= gram(this.A); // A^T A [k, k]
    this.gramBT ??= gram(transpose(this.B)); // B B^T [k, k]
    return { gA: this.gramA, gB: this.gramBT };
  }

  /** Frobenius norm of A B from k x k Gram matrices: ||AB||_F^2 = sum((A^T A) * (B B^T)). */
  norm(): number {
    const { gA, gB } = this.grams();
    let s = 0;
    for (let i = 0; i < gA.data.length; i++) s += gA.data[i] * gB.data[i];
    return Math.sqrt(Math.max(s, 0));
  }

  /**
   * ||this @ other||_F without forming either product: tr(A1^T A1 · M (B2 B2^T) M^T) with M = B1 A2
   * [k1, k2]. The Gram matrices are cached, so scoring many head pairs costs one M each.
   */
  productNorm(other: FactoredMatrix): number {
    const { gA } = this.grams();
    const { gB } = other.grams();
    const M = matmul(this.B, other.A);
    const inner = matmul(matmul(M, gB), transpose(M)); // [k1, k1]
    let s = 0;
    for (let i = 0; i < gA.data.length; i++) s += gA.data[i] * inner.data[i];
    return Math.sqrt(Math.max(s, 0));
  }

  /**
   * SVD from the factors: A = Qa Ra, B^T = Qb Rb, so A B = Qa (Ra Rb^T) Qb^T and only the small core
   * Ra Rb^T is decomposed. Returns min(m, n, k) singular triples.
   */
  svd(): Svd {
    const { qa, qb, core } = this.svdCore();
    const U = qa.applyQ(fromMl(core.leftSingularVectors));
    const V = qb.applyQ(fromMl(core.rightSingularVectors));
    return { U, S: Float64Array.from(core.diagonal), V };
  }

  /** Singular values only: the core's, without forming U and V (which cost more than the QRs). */
  singularValues(): Float64Array {
    return Float64Array.from(this.svdCore().core.diagonal);
  }

  private svdCore(): { qa: ThinQr; qb: ThinQr; core: SingularValueDecomposition } {
    let { A, B } = this;
    // QR needs tall factors; a wide factor means the product is small on that side, so absorb it.
    if (A.cols > A.rows) {
      B = matmul(A, B);
      A = identity(A.rows);
    }
    if (B.rows > B.cols) {
      A = matmul(A, B);
      B = identity(B.cols);
    }
    const qa = thinQr(A);
    const qb = thinQr(transpose(B));
    const core = new SingularValueDecomposition(toMl(matmul(qa.R, transpose(qb.R))), {
      autoTranspose: true,
    });
    return { qa, qb, core };
  }

  /** Eigenvalues of a square A B via the k x k matrix B A (the remaining m - k eigenvalues are 0). */
  eigenvalues(): { real: Float64Array; imag: Float64Array } {
    const evd = new EigenvalueDecomposition(toMl(this.BA));
    return {
      real: Float64Array.from(evd.realEigenvalues),
      imag: Float64Array.from(evd.imaginaryEigenvalues),
    };
  }
}
