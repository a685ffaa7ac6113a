import { KERNEL_NAMES, type KernelName, type Kernels } from "./kernels.ts";
import { createOnnxKernels } from "./onnx-kernels.ts";
import { referenceKernels } from "./reference-kernels.ts";

/** The default is the fast backend; `reference` is there for portability and parity checks. */
export function getKernels(name: KernelName | string = "onnx"): Kernels {
  if (name === "reference") return referenceKernels;
  if (name === "onnx") return createOnnxKernels();
  throw new Error(`Unknown backend "${name}". Use one of: ${KERNEL_NAMES.join(", ")}`);
}
