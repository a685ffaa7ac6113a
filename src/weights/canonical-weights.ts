/**
 * Model weights in TransformerLens' parameter layout, whatever family they came from. Each family's
 * converter (`families/`) fills this from Hugging Face tensors; the forward pass, weight processing and
 * every analysis read only this.
 */
import { Tensor } from "../tensor/tensor.ts";

/**
 * A normalisation's gain `w` and bias `b` (RMSNorm has no bias: `b` is zero). `null` in a block means it
 * was folded into the following weights (TransformerLens' LNPre / RMSNormPre: only centre-and-scale or scale).
 */
export interface LayerNormParams {
  w: Tensor; // [d_model]
  b: Tensor; // [d_model]
}

/** One transformer block. K and V have n_kv_heads heads (fewer than n_heads with grouped-query attention). */
export interface BlockWeights {
  ln1: LayerNormParams | null;
  W_Q: Tensor; // [n_heads, d_model, d_head]
  W_K: Tensor; // [n_kv_heads, d_model, d_head]
  W_V: Tensor; // [n_kv_heads, d_model, d_head]
  b_Q: Tensor; // [n_heads, d_head] (zero when the family has no q/k/v biases)
  b_K: Tensor; // [n_kv_heads, d_head]
  b_V: Tensor; // [n_kv_heads, d_head]
  W_O: Tensor; // [n_heads, d_head, d_model]
  b_O: Tensor; // [d_model]
  /** QK-norm gains (Gemma 3: `attn.q_norm`, `attn.k_norm`), each [d_head], shared by every head; absent: none. */
  qNorm?: LayerNormParams;
  kNorm?: LayerNormParams;
  /** The norm after attention, before its output joins the residual (Gemma 2: `ln1_post`); absent: none. */
  ln1Post?: LayerNormParams;
  ln2: LayerNormParams | null;
  W_in: Tensor; // [d_model, d_mlp] (the up projection of a gated MLP)
  /** [d_model, d_mlp]: the gate of a gated MLP (mlp.hook_pre = x @ W_gate), or null. */
  W_gate: Tensor | null;
  b_in: Tensor; // [d_mlp]
  W_out: Tensor; // [d_mlp, d_model]
  b_out: Tensor; // [d_model]
  /** The norm after the MLP (Gemma 2: `ln2_post`); absent: none. Never folded (the residual reads it). */
  ln2Post?: LayerNormParams;
}

export interface ModelWeights {
  W_E: Tensor; // [d_vocab, d_model]
  /** [n_ctx, d_model]; null for rotary positions. */
  W_pos: Tensor | null;
  blocks: BlockWeights[];
  lnFinal: LayerNormParams | null;
  W_U: Tensor; // [d_model, d_vocab]
  b_U: Tensor; // [d_vocab]
}

export function transpose2d(t: Tensor): Tensor {
  const [r, c] = t.shape;
  const out = new Float32Array(r * c);
  const src = t.data;
  // Blocked so both sides stay in cache for a 50257 x 768 embedding.
  const B = 64;
  for (let i0 = 0; i0 < r; i0 += B)
    for (let j0 = 0; j0 < c; j0 += B) {
      const iEnd = Math.min(i0 + B, r);
      const jEnd = Math.min(j0 + B, c);
      for (let i = i0; i < iEnd; i++) for (let j = j0; j < jEnd; j++) out[j * r + i] = src[i * c + j];
    }
  return new Tensor(out, [c, r]);
}
