/** Taking Hugging Face tensors in the shapes converters need (shared by every family's converter). */
import { Tensor } from "../../tensor/tensor.ts";
import { type LayerNormParams, transpose2d } from "../canonical-weights.ts";
import type { TensorSource } from "./family.ts";

/** A 1-D tensor (a bias or a norm gain). */
export function takeVector(src: TensorSource, name: string): Tensor {
  const t = src.take(name);
  return new Tensor(t.data, [t.data.length]);
}

/** A LayerNorm's `{prefix}.weight` and `{prefix}.bias`. */
export function takeLayerNorm(src: TensorSource, prefix: string): LayerNormParams {
  return { w: takeVector(src, `${prefix}.weight`), b: takeVector(src, `${prefix}.bias`) };
}

/** A torch Linear weight [out, in] as [in, out]. */
export function takeTransposed(src: TensorSource, name: string, out: number, inDim: number): Tensor {
  return transpose2d(new Tensor(src.take(name).data, [out, inDim]));
}

/** A torch Linear weight [heads * dh, D] (a q/k/v projection) as TransformerLens' per-head [heads, D, dh]. */
export function takePerHead(src: TensorSource, name: string, heads: number, D: number, dh: number): Tensor {
  const w = src.take(name).data;
  const out = new Float32Array(heads * D * dh);
  for (let h = 0; h < heads; h++)
    for (let e = 0; e < dh; e++) {
      const row = (h * dh + e) * D;
      for (let d = 0; d < D; d++) out[(h * D + d) * dh + e] = w[row + d];
    }
  return new Tensor(out, [heads, D, dh]);
}
