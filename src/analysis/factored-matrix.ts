/**
 * TransformerLens' FactoredMatrix: a low-rank product A @ B ([m, k] @ [k, n]) kept as its factors, so
 * that circuits like W_E W_Q W_K^T W_E^T ([d_vocab, d_vocab], rank d_head) cost O((m + n) k^2), never m * n.
 * Float64 throughout (the analyses compare small norms). QR/SVD/eigen come from ml-matrix (JAMA-derived).
 */
import { EigenvalueDecomposition, Matrix, QrDecomposition, SingularValueDecomposition } from "ml-matrix";
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

/** Thin QR of a tall matrix (rows >= cols): Q [rows, cols], R [cols, cols]. */
function thinQr(a: Mat): { Q: Mat; R: Mat } {
  const qr = new QrDecomposition(toMl(a));
  return { Q: fromMl(qr.orthogonalMatrix), R: fromMl(qr.upperTriangularMatrix) };
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
    const core = matmul(qa.R, transpose(qb.R));
    const svd = new SingularValueDecomposition(toMl(core), { autoTranspose: true });
    const S = Float64Array.from(svd.diagonal);
    const U = matmul(qa.Q, fromMl(svd.leftSingularVectors));
    const V = matmul(qb.Q, fromMl(svd.rightSingularVectors));
    return { U, S, V };
  }

  singularValues(): Float64Array {
    return this.svd().S;
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
