/** Public API: the tensor type (a row-major Float32Array with a shape) and the kernel interface's types. */
export type { Activation } from "./activations.ts";
export { einsum } from "./einsum.ts";
export type { KernelName, Kernels, LinearOp } from "./kernels.ts";
export { type NestedNumbers, nest, shapeSize, stridesOf, Tensor, unravelIndex } from "./tensor.ts";
export { type Dim, type Storage, TensorView } from "./tensor-view.ts";
