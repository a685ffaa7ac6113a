/**
 * Per-head circuits as factored matrices (TransformerLens `model.QK`, `model.OV`, full circuits with the
 * embedding) and composition scores between heads (Elhage et al. 2021, as in `all_composition_scores`).
 * Residual vectors are rows, as in TransformerLens: a head's output is x @ OV, its scores q_x @ QK @ k_x^T.
 */
import { FactoredMatrix, matFromTensor, matmul, transpose } from "./factored-matrix.ts";
import type { AnalysisModel } from "./residual-stack.ts";

function checkHead(model: AnalysisModel, layer: number, head: number): void {
  const { nLayers, nHeads } = model.cfg;
  if (!Number.isInteger(layer) || layer < 0 || layer >= nLayers)
    throw new Error(`Layer ${layer} is out of range: the model has layers 0..${nLayers - 1}`);
  if (!Number.isInteger(head) || head < 0 || head >= nHeads)
    throw new Error(`Head ${head} is out of range: each layer has heads 0..${nHeads - 1}`);
}

/** W_Q[h] @ W_K[h]^T [d_model, d_model]: the bilinear form behind the (unscaled) attention scores. */
export function qkCircuit(model: AnalysisModel, layer: number, head: number): FactoredMatrix {
  checkHead(model, layer, head);
  const blk = model.weights.blocks[layer];
  return new FactoredMatrix(matFromTensor(blk.W_Q, head), transpose(matFromTensor(blk.W_K, head)));
}

/** W_V[h] @ W_O[h] [d_model, d_model]: what the head writes for each residual vector it attends to. */
export function ovCircuit(model: AnalysisModel, layer: number, head: number): FactoredMatrix {
  checkHead(model, layer, head);
  const blk = model.weights.blocks[layer];
  return new FactoredMatrix(matFromTensor(blk.W_V, head), matFromTensor(blk.W_O, head));
}

/** W_E QK W_E^T [d_vocab, d_vocab]: token-to-token attention scores (ignoring positions and LN). */
export function fullQkCircuit(model: AnalysisModel, layer: number, head: number): FactoredMatrix {
  const W_E = matFromTensor(model.weights.W_E);
  const qk = qkCircuit(model, layer, head);
  return new FactoredMatrix(matmul(W_E, qk.A), transpose(matmul(W_E, transpose(qk.B))));
}

/** W_E OV W_U [d_vocab, d_vocab]: the logits a head adds for each token it attends to. */
export function fullOvCircuit(model: AnalysisModel, layer: number, head: number): FactoredMatrix {
  const ov = ovCircuit(model, layer, head);
  return new FactoredMatrix(
    matmul(matFromTensor(model.weights.W_E), ov.A),
    matmul(ov.B, matFromTensor(model.weights.W_U)),
  );
}

export type CompositionMode = "Q" | "K" | "V";

/**
 * Composition scores [L1, H1, L2, H2] (layer-major Float64Array): ||OV_1 @ R_2||_F / (||OV_1||_F ||R_2||_F)
 * where R_2 is QK_2 (Q-composition), QK_2^T (K-composition) or OV_2 (V-composition); zero unless L1 < L2.
 */
export function compositionScores(model: AnalysisModel, mode: CompositionMode): Float64Array {
  const { nLayers: L, nHeads: H } = model.cfg;
  if (mode !== "Q" && mode !== "K" && mode !== "V")
    throw new Error(`Composition mode must be "Q", "K" or "V", got "${String(mode)}"`);
  const ovs: FactoredMatrix[] = [];
  const rights: FactoredMatrix[] = [];
  for (let l = 0; l < L; l++)
    for (let h = 0; h < H; h++) {
      const ov = ovCircuit(model, l, h);
      ovs.push(ov);
      rights.push(mode === "V" ? ov : mode === "Q" ? qkCircuit(model, l, h) : qkCircuit(model, l, h).T);
    }
  const norms = { left: ovs.map((m) => m.norm()), right: rights.map((m) => m.norm()) };
  const scores = new Float64Array(L * H * L * H);
  for (let i = 0; i < L * H; i++)
    for (let j = 0; j < L * H; j++) {
      if (Math.floor(i / H) >= Math.floor(j / H)) continue;
      const denom = norms.left[i] * norms.right[j];
      scores[i * L * H + j] = denom > 0 ? ovs[i].productNorm(rights[j]) / denom : 0;
    }
  return scores;
}
