/**
 * The narrow interface behind which all heavy numeric work sits. Two implementations pass the same
 * parity tests: `reference` (plain TypeScript, runs anywhere including a browser) and `onnx`
 * (onnxruntime-node's MLAS kernels, chosen by measurement: see docs/kernels.md).
 *
 * Only products with a model weight are worth a native call: weights are fixed for a model's lifetime,
 * so a backend may prepack them once (`linear`). Everything else (attention over a short prompt,
 * LayerNorm, GELU) is cheap element-wise work done in TypeScript by the model itself.
 */
export interface Kernels {
  readonly name: KernelName;
  /**
   * Prepare y = x @ W + b for a fixed W: [inDim, outDim] (row-major) and optional b: [outDim].
   * The returned op keeps what it needs; callers may drop their W afterwards only if the op says it
   * copied (`ownsWeights`).
   */
  linear(W: Float32Array, inDim: number, outDim: number, b?: Float32Array | null): LinearOp;
}

export interface LinearOp {
  readonly inDim: number;
  readonly outDim: number;
  /** x: [rows, inDim] → [rows, outDim]. */
  forward(x: Float32Array, rows: number): Float32Array;
  /** dy: [rows, outDim] → dy @ W^T: [rows, inDim] (the input gradient; no bias). */
  backward(dy: Float32Array, rows: number): Float32Array;
  dispose(): void;
}

export type KernelName = "reference" | "onnx";
export const KERNEL_NAMES: readonly KernelName[] = ["reference", "onnx"];
