import { applyActivation } from "./activations.ts";
import type { Kernels, LinearOp } from "./kernels.ts";

/** Plain TypeScript kernels: the portable reference every faster backend is tested against. */
export const referenceKernels: Kernels = {
  name: "reference",
  linear(W, inDim, outDim, b) {
    checkWeight(W, inDim, outDim, b);
    return new ReferenceLinear(W, inDim, outDim, b ?? null);
  },
  activation(kind, x) {
    return applyActivation(kind, x);
  },
  bmm(a, b, batch, m, k, n, transB) {
    checkBmm(a, b, batch, m, k, n);
    const out = new Float32Array(batch * m * n);
    for (let t = 0; t < batch; t++) {
      const ao = t * m * k;
      const bo = t * k * n;
      const oo = t * m * n;
      for (let i = 0; i < m; i++) {
        if (transB) {
          for (let j = 0; j < n; j++) {
            let s = 0;
            for (let e = 0; e < k; e++) s += a[ao + i * k + e] * b[bo + j * k + e];
            out[oo + i * n + j] = s;
          }
        } else {
          for (let e = 0; e < k; e++) {
            const x = a[ao + i * k + e];
            if (x === 0) continue;
            for (let j = 0; j < n; j++) out[oo + i * n + j] += x * b[bo + e * n + j];
          }
        }
      }
    }
    return out;
  },
};

export function checkBmm(
  a: Float32Array,
  b: Float32Array,
  batch: number,
  m: number,
  k: number,
  n: number,
): void {
  if (a.length !== batch * m * k)
    throw new Error(`bmm: a has ${a.length} elements, expected ${batch}x${m}x${k}`);
  if (b.length !== batch * k * n)
    throw new Error(`bmm: b has ${b.length} elements, expected ${batch}x${k}x${n}`);
}

export function checkWeight(W: Float32Array, inDim: number, outDim: number, b?: Float32Array | null): void {
  if (W.length !== inDim * outDim) {
    throw new Error(`linear: weight has ${W.length} elements, expected ${inDim}x${outDim}`);
  }
  if (b && b.length !== outDim) throw new Error(`linear: bias has ${b.length} elements, expected ${outDim}`);
}

class ReferenceLinear implements LinearOp {
  private held: Float32Array | null;
  private restore: (() => Float32Array) | null = null;

  constructor(
    W: Float32Array,
    readonly inDim: number,
    readonly outDim: number,
    private readonly b: Float32Array | null,
  ) {
    this.held = W;
  }

  private get W(): Float32Array {
    if (!this.held) {
      this.held = (this.restore as () => Float32Array)();
      this.restore = null;
    }
    return this.held;
  }

  lend(restore: () => Float32Array): void {
    this.held = null;
    this.restore = restore;
  }

  reclaim(): void {
    this.W;
  }

  get weightBytes(): number {
    return this.held ? this.held.byteLength : 0;
  }

  forward(x: Float32Array, rows: number): Float32Array {
    const { W, inDim: K, outDim: N, b } = this;
    if (x.length !== rows * K)
      throw new Error(`linear: input has ${x.length} elements, expected ${rows}x${K}`);
    const y = new Float32Array(rows * N);
    // i-k-j order: the inner loop streams one row of W and one row of y (cache- and JIT-friendly).
    for (let i = 0; i < rows; i++) {
      const yo = i * N;
      if (b) y.set(b, yo);
      const xo = i * K;
      for (let k = 0; k < K; k++) {
        const a = x[xo + k];
        if (a === 0) continue;
        const wo = k * N;
        for (let j = 0; j < N; j++) y[yo + j] += a * W[wo + j];
      }
    }
    return y;
  }

  weight(): Float32Array {
    return this.held ?? (this.restore as () => Float32Array)();
  }

  backward(dy: Float32Array, rows: number): Float32Array {
    const { W, inDim: K, outDim: N } = this;
    if (dy.length !== rows * N)
      throw new Error(`linear backward: got ${dy.length} elements, expected ${rows}x${N}`);
    const dx = new Float32Array(rows * K);
    for (let i = 0; i < rows; i++) {
      const go = i * N;
      for (let k = 0; k < K; k++) {
        const wo = k * N;
        let s = 0;
        for (let j = 0; j < N; j++) s += dy[go + j] * W[wo + j];
        dx[i * K + k] = s;
      }
    }
    return dx;
  }

  /** The backward pass reads the one W. */
  readonly backwardBytes = 0;
  releaseBackward(): void {}

  dispose(): void {}
}
