/**
 * Per-head circuits as factored matrices (TransformerLens `model.QK`, `model.OV`, full circuits with the
 * embedding) and composition scores between heads (Elhage et al. 2021, as in `all_composition_scores`).
 * Residual vectors are rows, as in TransformerLens: a head's output is x @ OV, its scores q_x @ QK @ k_x^T.
 *
 * The large products (anything with the vocabulary, and the composition scores' batched product) run on
 * the model's float32 kernels when it has them, as TransformerLens runs them in the model's float32; the
 * small cores (QR, SVD, norms) stay float64. A model without kernels (`{ cfg, weights }`) computes all in
 * float64 TypeScript: exact to the float32 weights, but minutes at GPT-2-small size.
 */
import type { HookedTransformer } from "../model/hooked-transformer.ts";
import type { Tensor } from "../tensor/tensor.ts";
import { choleskyUpper, FactoredMatrix, mat, matFromTensor, thinQr, transpose } from "./factored-matrix.ts";
import type { AnalysisModel } from "./residual-stack.ts";

/** What the circuit tools read: the weights, and the kernels if the model has them (for the big products). */
export type CircuitModel = AnalysisModel & Partial<Pick<HookedTransformer, "kernels">>;

/**
 * Batched a [batch, m, k] @ b [batch, k, n] (or with `transB` b given as [batch, n, k]) → [batch, m, n]
 * float64: through the model's float32 kernels if present, else a float64 loop.
 */
function product(
  model: CircuitModel,
  a: Float32Array | Float64Array,
  b: Float32Array | Float64Array,
  batch: number,
  m: number,
  k: number,
  n: number,
  transB: boolean,
): Float64Array {
  if (model.kernels) {
    // Copies when given float64 or a view into a larger buffer (the native binding wants a whole buffer).
    const f32 = (x: Float32Array | Float64Array) =>
      x instanceof Float32Array && x.byteOffset === 0 && x.byteLength === x.buffer.byteLength
        ? x
        : new Float32Array(x);
    return new Float64Array(model.kernels.bmm(f32(a), f32(b), batch, m, k, n, transB));
  }
  const out = new Float64Array(batch * m * n);
  for (let t = 0; t < batch; t++) {
    const ao = t * m * k;
    const bo = t * k * n;
    const oo = t * m * n;
    for (let i = 0; i < m; i++)
      if (transB)
        for (let j = 0; j < n; j++) {
          let s = 0;
          for (let e = 0; e < k; e++) s += a[ao + i * k + e] * b[bo + j * k + e];
          out[oo + i * n + j] = s;
        }
      else
        for (let e = 0; e < k; e++) {
          const v = a[ao + i * k + e];
          if (v === 0) continue;
          for (let j = 0; j < n; j++) out[oo + i * n + j] += v * b[bo + e * n + j];
        }
  }
  return out;
}

/** Head h of a [H, r, c] weight as its float32 rows [r, c] (a view, no copy). */
function headRows(t: Tensor, h: number): Float32Array {
  const [, r, c] = t.shape;
  return t.data.subarray(h * r * c, (h + 1) * r * c);
}

type HeadWeight = "W_Q" | "W_K" | "W_V" | "W_O";

/**
 * Which slice of a head weight query head `head` uses. W_K and W_V hold one slice per key/value head
 * ([n_kv_heads, d_model, d_head]); with grouped-query attention, query head h reads key/value head
 * floor(h / (n_heads / n_kv_heads)), the same as TransformerLens' W_K / W_V (repeat_interleave of _W_K).
 */
export function headSlice(model: AnalysisModel, layer: number, name: HeadWeight, head: number): number {
  const stored = model.weights.blocks[layer][name].shape[0];
  return Math.floor(head / (model.cfg.nHeads / stored));
}

/** Head `head`'s slice of a block weight as a float64 matrix (W_K / W_V through the key/value head it reads). */
function headMat(model: AnalysisModel, layer: number, name: HeadWeight, head: number) {
  return matFromTensor(model.weights.blocks[layer][name], headSlice(model, layer, name, head));
}

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
  return new FactoredMatrix(
    headMat(model, layer, "W_Q", head),
    transpose(headMat(model, layer, "W_K", head)),
  );
}

/** W_V[h] @ W_O[h] [d_model, d_model]: what the head writes for each residual vector it attends to. */
export function ovCircuit(model: AnalysisModel, layer: number, head: number): FactoredMatrix {
  checkHead(model, layer, head);
  return new FactoredMatrix(headMat(model, layer, "W_V", head), headMat(model, layer, "W_O", head));
}

/** W_E QK W_E^T [d_vocab, d_vocab]: token-to-token attention scores (ignoring positions and LN). */
export function fullQkCircuit(model: CircuitModel, layer: number, head: number): FactoredMatrix {
  checkHead(model, layer, head);
  const { dVocab: V, dModel: D, dHead: dh } = model.cfg;
  const WE = model.weights.W_E.data; // [V, D]
  const WQt = transpose(headMat(model, layer, "W_Q", head)).data; // [dh, D]
  const WKt = transpose(headMat(model, layer, "W_K", head)).data; // [dh, D]
  return new FactoredMatrix(
    mat(V, dh, product(model, WE, WQt, 1, V, D, dh, true)), // W_E W_Q [V, dh]
    mat(dh, V, product(model, WKt, WE, 1, dh, D, V, true)), // W_K^T W_E^T [dh, V]
  );
}

/** W_E OV W_U [d_vocab, d_vocab]: the logits a head adds for each token it attends to. */
export function fullOvCircuit(model: CircuitModel, layer: number, head: number): FactoredMatrix {
  checkHead(model, layer, head);
  const { dVocab: V, dModel: D, dHead: dh } = model.cfg;
  const blk = model.weights.blocks[layer];
  const WVt = transpose(headMat(model, layer, "W_V", head)).data; // [dh, D]
  return new FactoredMatrix(
    mat(V, dh, product(model, model.weights.W_E.data, WVt, 1, V, D, dh, true)), // W_E W_V [V, dh]
    mat(dh, V, product(model, headRows(blk.W_O, head), model.weights.W_U.data, 1, dh, D, V, false)), // W_O W_U
  );
}

export type CompositionMode = "Q" | "K" | "V";

/**
 * Composition scores [L1, H1, L2, H2] (layer-major Float64Array): ||OV_1 @ R_2||_F / (||OV_1||_F ||R_2||_F)
 * where R_2 is QK_2 (Q-composition), QK_2^T (K-composition) or OV_2 (V-composition); zero unless L1 < L2.
 *
 * Each factored matrix X Y^T (X, Y [D, dh]) is first reduced to dh columns without changing any norm
 * it enters: with Y = Q R (thin QR), ||X Y^T Z||_F = ||R X^T Z||_F and ||Z X Y^T||_F = ||Z X R^T||_F.
 * So the left heads become rows [dh, D], the right heads columns [D, dh], every pair's numerator is the
 * Frobenius norm of one dh x dh block of a single [L*H*dh, D] @ [D, L*H*dh] product (computed one left
 * layer at a time, only against later layers), and each denominator is a reduced factor's own norm.
 */
export function compositionScores(model: CircuitModel, mode: CompositionMode): Float64Array {
  const { nLayers: L, nHeads: H, dModel: D, dHead: dh } = model.cfg;
  if (mode !== "Q" && mode !== "K" && mode !== "V")
    throw new Error(`Composition mode must be "Q", "K" or "V", got "${String(mode)}"`);
  const N = L * H;
  const stack = (name: HeadWeight) => stackHeadsDhByD(model, name);
  const WO = stack("W_O");
  // left_i = R(W_V) W_O [dh, D] (OV = W_V W_O); rightT_j = R(Y) X^T [dh, D] for R_2 = X Y^T with
  // Q: X = W_Q, Y = W_K.  K: X = W_K, Y = W_Q.  V: X = W_V, Y = W_O^T.
  const { reduced: left, norms: normLeft } = reduceHeads(model, WO, stack("W_V"), N, dh, D);
  const [XT, YT] = mode === "Q" ? ["W_Q", "W_K"] : mode === "K" ? ["W_K", "W_Q"] : ["W_V", null];
  const { reduced: rightT, norms: normRight } = reduceHeads(
    model,
    stack(XT as "W_Q" | "W_K" | "W_V"),
    YT === null ? WO : stack(YT as "W_Q" | "W_K"),
    N,
    dh,
    D,
  );
  const scores = new Float64Array(N * N);
  const rowsPerLayer = H * dh;
  for (let l1 = 0; l1 < L - 1; l1++) {
    const first = (l1 + 1) * H; // first right head in a later layer
    const cols = (N - first) * dh;
    const rows = left.subarray(l1 * rowsPerLayer * D, (l1 + 1) * rowsPerLayer * D);
    const P = product(model, rows, rightT.subarray(first * dh * D), 1, rowsPerLayer, D, cols, true);
    for (let h1 = 0; h1 < H; h1++) {
      const i = l1 * H + h1;
      const sq = new Float64Array(N - first); // squared numerator per right head
      for (let r = h1 * dh; r < (h1 + 1) * dh; r++) {
        const o = r * cols;
        for (let j = 0; j < N - first; j++) {
          let s = 0;
          for (let c = j * dh; c < (j + 1) * dh; c++) s += P[o + c] * P[o + c];
          sq[j] += s;
        }
      }
      for (let j = first; j < N; j++) {
        const denom = normLeft[i] * normRight[j];
        scores[i * N + j] = denom > 0 ? Math.sqrt(sq[j - first]) / denom : 0;
      }
    }
  }
  return scores;
}

/**
 * Every query head's weight as [dh, D] rows (W_O as stored, W_Q/W_K/W_V transposed; W_K/W_V through the
 * key/value head each query head reads), stacked: [L*H, dh, D].
 */
function stackHeadsDhByD(model: CircuitModel, name: HeadWeight): Float32Array {
  const { nLayers: L, nHeads: H, dModel: D, dHead: dh } = model.cfg;
  const out = new Float32Array(L * H * dh * D);
  for (let l = 0; l < L; l++) {
    const w = model.weights.blocks[l][name].data;
    if (name === "W_O") out.set(w, l * H * dh * D);
    else
      for (let h = 0; h < H; h++) {
        const o = (l * H + h) * dh * D;
        const src = headSlice(model, l, name, h) * D * dh;
        for (let d = 0; d < D; d++) for (let c = 0; c < dh; c++) out[o + c * D + d] = w[src + d * dh + c];
      }
  }
  return out;
}

/**
 * For each head, F [dh, D] reduced to R F with R [dh, dh] upper triangular and R^T R = T T^T (T [dh, D]):
 * so ||T^T F Z||_F = ||R F Z||_F for any Z. R is the Cholesky factor of the Gram (one batched product),
 * or, for a head whose Gram is numerically singular, from a float64 Householder QR of T^T.
 * Returns the reduced heads [n, dh, D] and their Frobenius norms.
 */
function reduceHeads(
  model: CircuitModel,
  F: Float32Array,
  T: Float32Array,
  n: number,
  dh: number,
  D: number,
): { reduced: Float64Array; norms: Float64Array } {
  const grams = product(model, T, T, n, dh, D, dh, true); // [n, dh, dh]
  const R = new Float64Array(n * dh * dh);
  for (let i = 0; i < n; i++) {
    const r =
      choleskyUpper(mat(dh, dh, grams.subarray(i * dh * dh, (i + 1) * dh * dh))) ??
      thinQr(transpose(mat(dh, D, T.subarray(i * dh * D, (i + 1) * dh * D)))).R;
    R.set(r.data, i * dh * dh);
  }
  const reduced = product(model, R, F, n, dh, dh, D, false);
  const norms = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    let sq = 0;
    for (let e = i * dh * D; e < (i + 1) * dh * D; e++) sq += reduced[e] * reduced[e];
    norms[i] = Math.sqrt(sq);
  }
  return { reduced, norms };
}
