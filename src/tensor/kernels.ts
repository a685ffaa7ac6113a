import type { Activation as ActivationKind } from "./activations.ts";
import type { CompiledGraph, OpGraph } from "./op-graph.ts";

/**
 * The narrow interface behind which all heavy numeric work sits. Two implementations pass the same
 * parity tests: `reference` (plain TypeScript, runs anywhere including a browser) and `onnx`
 * (onnxruntime-node's MLAS kernels, chosen by measurement: see docs/kernels.md).
 *
 * Products with a model weight go through `linear`: weights are fixed for a model's lifetime, so a
 * backend may prepack them once. Attention's activation-by-activation products go through `bmm`.
 * Element-wise work (LayerNorm, GELU, softmax) is done in TypeScript by the model itself.
 */
export interface Kernels {
  readonly name: KernelName;
  /**
   * Prepare y = x @ W + b for a fixed W: [inDim, outDim] (row-major) and optional b: [outDim].
   * The returned op keeps what it needs; callers may drop their W afterwards only if the op says it
   * copied (`ownsWeights`).
   */
  linear(W: Float32Array, inDim: number, outDim: number, b?: Float32Array | null): LinearOp;
  /**
   * Batched product of two activations (attention): a [batch, m, k] @ b [batch, k, n], or with
   * `transB` b given as [batch, n, k] and used transposed. Returns [batch, m, n].
   */
  bmm(
    a: Float32Array,
    b: Float32Array,
    batch: number,
    m: number,
    k: number,
    n: number,
    transB: boolean,
  ): Float32Array;
  /** The MLP non-linearity, element-wise (the largest element-wise cost of a forward pass). */
  activation(kind: ActivationKind, x: Float32Array): Float32Array;
  /**
   * Optional: compile a whole computation (a graph of ONNX operators) to run in one call on the backend's
   * engine. Only onnxruntime has one; a caller without it takes its TypeScript path.
   */
  graph?(g: OpGraph): CompiledGraph;
}

export type { ActivationKind };

export interface LinearOp {
  readonly inDim: number;
  readonly outDim: number;
  /** x: [rows, inDim] → [rows, outDim]. */
  forward(x: Float32Array, rows: number): Float32Array;
  /**
   * dy: [rows, outDim] → dy @ W^T: [rows, inDim] (the input gradient; no bias). A backend may build
   * and keep a second copy of W for this (onnxruntime: a session holding W^T); see `releaseBackward`.
   */
  backward(dy: Float32Array, rows: number): Float32Array;
  /** Bytes held for `backward` beyond the forward weight (0 when nothing is held). */
  readonly backwardBytes: number;
  /** Drop what `backward` keeps (the next `backward` rebuilds it); a no-op where nothing is kept. */
  releaseBackward(): void;
  /**
   * The weight W [inDim, outDim] this op computes with, exactly. A backend that holds its own copy
   * (onnxruntime) recomputes it on each call, so the caller need not keep a second copy alive.
   */
  weight(): Float32Array;
  /**
   * The caller holds W now (in a layout of its own) and lends it back: the op drops its own copy, and
   * calls `restore()` for W, exactly, the next time it computes (`weight()` reads it from there too).
   * Circuits' per-head weights use this so that the model is not held twice while they work.
   */
  lend(restore: () => Float32Array): void;
  /** Takes a lent W back now (calls `restore`), so that the lender can let its copy go; a no-op if not lent. */
  reclaim(): void;
  /** Bytes of W this op holds now (0 while lent). */
  readonly weightBytes: number;
  dispose(): void;
}

export type KernelName = "reference" | "onnx";
export const KERNEL_NAMES: readonly KernelName[] = ["reference", "onnx"];
