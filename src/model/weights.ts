import { Tensor } from "../tensor/tensor.ts";
import type { Checkpoint, RawTensor } from "../weights/checkpoint.ts";
import type { GPT2Config } from "../weights/config.ts";

/** A LayerNorm's affine parameters; `null` in a block means it was folded away (LNPre: centre and scale only). */
export interface LayerNormParams {
  w: Tensor; // [d_model]
  b: Tensor; // [d_model]
}

/** One transformer block in TransformerLens' parameter layout. */
export interface BlockWeights {
  ln1: LayerNormParams | null;
  W_Q: Tensor; // [n_heads, d_model, d_head]
  W_K: Tensor;
  W_V: Tensor;
  b_Q: Tensor; // [n_heads, d_head]
  b_K: Tensor;
  b_V: Tensor;
  W_O: Tensor; // [n_heads, d_head, d_model]
  b_O: Tensor; // [d_model]
  ln2: LayerNormParams | null;
  W_in: Tensor; // [d_model, d_mlp]
  b_in: Tensor; // [d_mlp]
  W_out: Tensor; // [d_mlp, d_model]
  b_out: Tensor; // [d_model]
}

export interface ModelWeights {
  W_E: Tensor; // [d_vocab, d_model]
  W_pos: Tensor; // [n_ctx, d_model]
  blocks: BlockWeights[];
  lnFinal: LayerNormParams | null;
  W_U: Tensor; // [d_model, d_vocab]
  b_U: Tensor; // [d_vocab]
}

/**
 * Hugging Face GPT-2 tensors → TransformerLens layout. Consumes the checkpoint's map entry by entry
 * (deleting what it converted) so that peak memory stays near one copy of the weights.
 */
export function convertCheckpoint(ckpt: Checkpoint): ModelWeights {
  const cfg = ckpt.config;
  const { dModel: D, nHeads: H, dHead: dh } = cfg;
  const take = (name: string): RawTensor => {
    const t = ckpt.tensors.get(name);
    if (!t) throw new Error(`Checkpoint ${ckpt.dir} has no tensor "${name}"`);
    ckpt.tensors.delete(name);
    return t;
  };
  const vec = (name: string) => {
    const t = take(name);
    return new Tensor(t.data, [t.data.length]);
  };
  const ln = (prefix: string): LayerNormParams => ({ w: vec(`${prefix}.weight`), b: vec(`${prefix}.bias`) });

  const wte = take("wte.weight");
  const W_E = new Tensor(wte.data, [cfg.dVocab, D]);
  const W_pos = new Tensor(take("wpe.weight").data, [cfg.nCtx, D]);
  const blocks: BlockWeights[] = [];
  for (let l = 0; l < cfg.nLayers; l++) {
    const p = `h.${l}`;
    // c_attn is Conv1D [D, 3D]: columns are Q | K | V, each split into heads of d_head.
    const cAttnW = take(`${p}.attn.c_attn.weight`).data;
    const cAttnB = take(`${p}.attn.c_attn.bias`).data;
    const [W_Q, W_K, W_V] = [0, 1, 2].map((which) => {
      const out = new Float32Array(H * D * dh);
      for (let h = 0; h < H; h++)
        for (let d = 0; d < D; d++) {
          const src = d * 3 * D + which * D + h * dh;
          out.set(cAttnW.subarray(src, src + dh), (h * D + d) * dh);
        }
      return new Tensor(out, [H, D, dh]);
    });
    const [b_Q, b_K, b_V] = [0, 1, 2].map(
      (which) => new Tensor(cAttnB.slice(which * D, (which + 1) * D), [H, dh]),
    );
    blocks.push({
      ln1: ln(`${p}.ln_1`),
      W_Q,
      W_K,
      W_V,
      b_Q,
      b_K,
      b_V,
      // c_proj [D_in = H*dh, D] already is [H, dh, D] row-major.
      W_O: new Tensor(take(`${p}.attn.c_proj.weight`).data, [H, dh, D]),
      b_O: vec(`${p}.attn.c_proj.bias`),
      ln2: ln(`${p}.ln_2`),
      W_in: new Tensor(take(`${p}.mlp.c_fc.weight`).data, [D, cfg.dMlp]),
      b_in: vec(`${p}.mlp.c_fc.bias`),
      W_out: new Tensor(take(`${p}.mlp.c_proj.weight`).data, [cfg.dMlp, D]),
      b_out: vec(`${p}.mlp.c_proj.bias`),
    });
  }
  const lnFinal = ln("ln_f");
  // Tied unembedding: W_U = W_E^T, b_U = 0.
  const W_U = transpose2d(W_E);
  return { W_E, W_pos, blocks, lnFinal, W_U, b_U: Tensor.zeros([cfg.dVocab]) };
}

export function transpose2d(t: Tensor): Tensor {
  const [r, c] = t.shape;
  const out = new Float32Array(r * c);
  const src = t.data;
  // Blocked so both sides stay in cache for the 50257 x 768 embedding.
  const B = 64;
  for (let i0 = 0; i0 < r; i0 += B)
    for (let j0 = 0; j0 < c; j0 += B) {
      const iEnd = Math.min(i0 + B, r);
      const jEnd = Math.min(j0 + B, c);
      for (let i = i0; i < iEnd; i++) for (let j = j0; j < jEnd; j++) out[j * r + i] = src[i * c + j];
    }
  return new Tensor(out, [c, r]);
}

export type { GPT2Config };
