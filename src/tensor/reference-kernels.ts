import type { Kernels, LinearOp } from "./kernels.ts";

/** Plain TypeScript kernels: the portable reference every faster backend is tested against. */
export const referenceKernels: Kernels = {
  name: "reference",
  linear(W, inDim, outDim, b) {
    checkWeight(W, inDim, outDim, b);
    return new ReferenceLinear(W, inDim, outDim, b ?? null);
  },
};

export function checkWeight(W: Float32Array, inDim: number, outDim: number, b?: Float32Array | null): void {
  if (W.length !== inDim * outDim) {
    throw new Error(`linear: weight has ${W.length} elements, expected ${inDim}x${outDim}`);
  }
  if (b && b.length !== outDim) throw new Error(`linear: bias has ${b.length} elements, expected ${outDim}`);
}

class ReferenceLinear implements LinearOp {
  constructor(
    private readonly W: Float32Array,
    readonly inDim: number,
    readonly outDim: number,
    private readonly b: Float32Array | null,
  ) {}

  forward(x: Float32Array, rows: number): Float32Array {
    const { W, inDim: K, outDim: N, b } = this;
    if (x.length !== rows * K) throw new Error(`linear: input has ${x.length} elements, expected ${rows}x${K}`);
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

  backward(dy: Float32Array, rows: number): Float32Array {
    const { W, inDim: K, outDim: N } = this;
    if (dy.length !== rows * N) throw new Error(`linear backward: got ${dy.length} elements, expected ${rows}x${N}`);
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

  dispose(): void {}
}
