/**
 * One training batch of a sparse autoencoder (or a transcoder: read x, predict y): the forward pass, the
 * loss and every parameter's gradient, written out by hand. Generic over the float type so that tests
 * can run the very same code in float64 against finite differences; training runs it in float32 with the
 * dense product on the project's kernels.
 *
 * Notation (SAELens): x [B, d_in], y [B, d_out] (y = x for an SAE), x' = x − b_dec when
 * `applyBDecToInput`, pre = x' W_enc + b_enc [B, d_sae], f = σ(pre), ŷ = f W_dec + b_dec.
 * Loss = Σ‖ŷ − y‖² / B (squared error summed over dimensions, mean over tokens, as SAELens) plus:
 * - standard: l1 · Σ f_j ‖W_dec[j]‖ / B (the L1 penalty weighted by decoder norms, as SAELens 6);
 * - jumprelu: l1 · Σ H(pre_j − θ_j) / B (an L0 penalty) with straight-through gradients for θ through a
 *   rectangle kernel of width `bandwidth` (Rajamanoharan et al. 2024, Gemma Scope); θ = exp(log_threshold);
 * - topk / batchtopk: the AuxK loss (Gao et al. 2024): the top k_aux pre-activations among dead latents
 *   reconstruct the residual y − ŷ (held fixed) through W_dec without bias, scaled by min(dead / k_aux, 1).
 * BatchTopK keeps the k·B largest activations of the whole batch.
 */

import { rowTopK } from "../sae/topk.ts";

export type FloatArray = Float32Array | Float64Array;

export const ARCHITECTURES = ["topk", "batchtopk", "jumprelu", "standard"] as const;
export type TrainArchitecture = (typeof ARCHITECTURES)[number];

/** Trainable tensors, SAELens layouts; `log_threshold` only for jumprelu. */
export interface SaeParams<A extends FloatArray = Float32Array> {
  W_enc: A; // [d_in, d_sae]
  b_enc: A; // [d_sae]
  W_dec: A; // [d_sae, d_out]
  b_dec: A; // [d_out]
  log_threshold?: A; // [d_sae]
}

export const PARAM_NAMES = ["W_enc", "b_enc", "W_dec", "b_dec", "log_threshold"] as const;
export type ParamName = (typeof PARAM_NAMES)[number];

export interface SaeDims {
  dIn: number;
  dSae: number;
  /** d_in for an SAE; the output hook's width for a transcoder. */
  dOut: number;
}

export interface LossSettings {
  architecture: TrainArchitecture;
  /** topk: latents per token; batchtopk: mean latents per token. */
  k: number;
  /** standard: L1 coefficient; jumprelu: L0 coefficient. */
  l1: number;
  /** jumprelu: width of the straight-through rectangle kernel. */
  bandwidth: number;
  /** topk / batchtopk: weight of the AuxK loss. */
  auxCoefficient: number;
  applyBDecToInput: boolean;
}

/** What the float type needs: fresh zeroed arrays and a dense product a [m, k] @ b [k, n]. */
export interface ArrayOps<A extends FloatArray> {
  zeros(n: number): A;
  matmul(a: A, b: A, m: number, k: number, n: number): A;
  /** x [m, k] @ W [k, n] + b [n] in one call (optional: else `matmul`, then the bias added row by row). */
  affine?(x: A, W: A, b: A, m: number, k: number, n: number): A;
  /**
   * With `true`, the decode f W_dec and the gradients x'ᵀ ∂L/∂pre (W_enc) and fᵀ ∂L/∂ŷ (W_dec) are dense
   * products through `matmul`, as PyTorch trainers take them (f, fᵀ, x'ᵀ and ∂L/∂pre dense in reused
   * buffers); else sparse loops over the active latents. ∂L/∂f is taken only where f is active either way
   * (k dot products a row: the dense ∂L/∂ŷ W_decᵀ measured 2–3 × slower). See docs/benchmarks.md.
   */
  denseProducts?: boolean;
  /**
   * A whole batch's forward, loss and gradients by another engine (graph-step.ts: one onnxruntime graph),
   * for the settings it covers; null for the others, which take `batchLossAndGrads`.
   */
  batchStep?: BatchStep<A>;
}

export type BatchStep<A extends FloatArray> = (
  p: SaeParams<A>,
  batch: BatchInput<A>,
  dims: SaeDims,
  s: LossSettings,
) => BatchResult<A> | null;

export interface BatchInput<A extends FloatArray> {
  x: A; // [rows, d_in]
  y: A; // [rows, d_out]; the same array as x for an SAE
  rows: number;
  /** topk / batchtopk: latents counted dead (1) for the AuxK loss. */
  dead?: Uint8Array;
}

/** Active latents of each row, compressed-row form: row r owns entries rowStart[r] … rowStart[r+1]−1. */
export interface SparseActs<A extends FloatArray> {
  rowStart: Int32Array;
  index: Int32Array;
  value: A;
}

export interface BatchResult<A extends FloatArray> {
  loss: number;
  mse: number;
  aux: number;
  sparsity: number;
  /** Mean number of non-zero latents per token. */
  l0: number;
  /** 1 where a latent fired on some token of the batch. */
  fired: Uint8Array;
  /** batchtopk: the smallest activation kept (its threshold estimate); else NaN. */
  minKept: number;
  grads: SaeParams<A>;
}

/**
 * The dense pre-activations x' W_enc + b_enc [rows, d_sae] and the encoder input x': through `ops.affine`
 * (bias and product in one kernel call) when the ops have it.
 */
export function preActivations<A extends FloatArray>(
  p: SaeParams<A>,
  x: A,
  rows: number,
  dims: SaeDims,
  applyBDecToInput: boolean,
  ops: ArrayOps<A>,
): { xIn: A; pre: A } {
  const { dIn, dSae } = dims;
  let xIn = x;
  if (applyBDecToInput) {
    xIn = ops.zeros(rows * dIn);
    for (let r = 0; r < rows; r++)
      for (let i = 0; i < dIn; i++) xIn[r * dIn + i] = x[r * dIn + i] - p.b_dec[i];
  }
  if (ops.affine) return { xIn, pre: ops.affine(xIn, p.W_enc, p.b_enc, rows, dIn, dSae) };
  const pre = ops.matmul(xIn, p.W_enc, rows, dIn, dSae);
  const bias = p.b_enc;
  for (let r = 0; r < rows; r++) {
    const o = r * dSae;
    for (let j = 0; j < dSae; j++) pre[o + j] += bias[j];
  }
  return { xIn, pre };
}

/** The `n`-th largest value of `values` (1-based), by quickselect on a copy. */
function nthLargest(values: Float64Array, n: number): number {
  const a = values;
  let lo = 0;
  let hi = a.length - 1;
  const want = n - 1;
  while (lo < hi) {
    const pivot = a[(lo + hi) >>> 1];
    let i = lo;
    let j = hi;
    while (i <= j) {
      while (a[i] > pivot) i++;
      while (a[j] < pivot) j--;
      if (i <= j) {
        const t = a[i];
        a[i] = a[j];
        a[j] = t;
        i++;
        j--;
      }
    }
    if (want <= j) hi = j;
    else if (want >= i) lo = i;
    else return a[want];
  }
  return a[want];
}

/** Which latents are active and their values, per architecture (f = 0 elsewhere). */
export function activeLatents<A extends FloatArray>(
  pre: A,
  rows: number,
  dSae: number,
  s: Pick<LossSettings, "architecture" | "k">,
  threshold: A | undefined,
  ops: Pick<ArrayOps<A>, "zeros">,
): SparseActs<A> & { minKept: number } {
  const rowStart = new Int32Array(rows + 1);
  let index = new Int32Array(s.architecture === "topk" ? rows * s.k : 1024);
  let value = ops.zeros(index.length);
  let nnz = 0;
  const push = (j: number, v: number) => {
    if (nnz === index.length) {
      const i2 = new Int32Array(index.length * 2);
      i2.set(index);
      const v2 = ops.zeros(index.length * 2);
      v2.set(value);
      index = i2;
      value = v2;
    }
    index[nnz] = j;
    value[nnz++] = v;
  };
  let minKept = Number.NaN;
  let cut = Number.NEGATIVE_INFINITY;
  if (s.architecture === "batchtopk") {
    let nPos = 0;
    for (const v of pre) if (v > 0) nPos++;
    const positive = new Float64Array(nPos);
    nPos = 0;
    for (const v of pre) if (v > 0) positive[nPos++] = v;
    const n = Math.min(Math.round(s.k * rows), nPos);
    cut = n > 0 ? nthLargest(positive, n) : Number.POSITIVE_INFINITY;
    minKept = n > 0 ? cut : Number.NaN;
  }
  const top = new Int32Array(s.k);
  const logThreshold = threshold;
  for (let r = 0; r < rows; r++) {
    const o = r * dSae;
    if (s.architecture === "topk") {
      const found = rowTopK(pre, o, dSae, s.k, top);
      // Ascending latent order within the row (insertion sort of ≤ k), only positive values (f = relu of the top k).
      for (let a = 1; a < found; a++) {
        const j = top[a];
        let b = a;
        for (; b > 0 && top[b - 1] > j; b--) top[b] = top[b - 1];
        top[b] = j;
      }
      for (let a = 0; a < found; a++) {
        const j = top[a];
        if (pre[o + j] > 0) {
          index[nnz] = j;
          value[nnz++] = pre[o + j];
        }
      }
    } else if (s.architecture === "standard") {
      for (let j = 0; j < dSae; j++) if (pre[o + j] > 0) push(j, pre[o + j]);
    } else if (s.architecture === "jumprelu") {
      for (let j = 0; j < dSae; j++) if (pre[o + j] > Math.exp(logThreshold![j])) push(j, pre[o + j]);
    } else {
      for (let j = 0; j < dSae; j++) if (pre[o + j] > 0 && pre[o + j] >= cut) push(j, pre[o + j]);
    }
    rowStart[r + 1] = nnz;
  }
  return {
    rowStart,
    index: index.subarray(0, nnz),
    value: value.subarray(0, nnz) as A,
    minKept,
  };
}

/**
 * Row r's error gradient ∂/∂ŷ of Σ‖ŷ − y‖² / B into dyHat, b_dec's share into gBdec; returns `se` plus the
 * row's squared error (added element by element, so the total's rounding is that of one running sum).
 */
function errorRow<A extends FloatArray>(
  yHat: A,
  y: A,
  o: number,
  dOut: number,
  rows: number,
  dyHat: A,
  gBdec: A,
  se: number,
): number {
  for (let i = 0; i < dOut; i++) {
    const err = yHat[o + i] - y[o + i];
    se += err * err;
    dyHat[o + i] = (2 * err) / rows;
    gBdec[i] += dyHat[o + i];
  }
  return se;
}

/**
 * The reconstruction ŷ = f W_dec + b_dec from sparse f, and with it, row by row while the row is in cache,
 * the error's gradient ∂/∂ŷ of Σ‖ŷ − y‖² / B, the squared error and b_dec's share of the gradient.
 */
function reconstruct<A extends FloatArray>(
  acts: SparseActs<A>,
  p: SaeParams<A>,
  y: A,
  rows: number,
  dOut: number,
  gBdec: A,
  ops: ArrayOps<A>,
): { yHat: A; dyHat: A; mse: number } {
  const yHat = ops.zeros(rows * dOut);
  const dyHat = ops.zeros(rows * dOut);
  const { rowStart, index, value } = acts;
  const W = p.W_dec;
  const bias = p.b_dec;
  let mse = 0;
  for (let r = 0; r < rows; r++) {
    const o = r * dOut;
    for (let i = 0; i < dOut; i++) yHat[o + i] = bias[i];
    for (let e = rowStart[r]; e < rowStart[r + 1]; e++) {
      const v = value[e];
      const w = index[e] * dOut;
      for (let i = 0; i < dOut; i++) yHat[o + i] += v * W[w + i];
    }
    mse = errorRow(yHat, y, o, dOut, rows, dyHat, gBdec, mse);
  }
  return { yHat, dyHat, mse: mse / rows };
}

/**
 * `reconstruct` through the dense product f [rows, d_sae] @ W_dec, the bias added after it. Also returns fᵀ
 * [d_sae, rows], W_dec's gradient's left operand (the kernels take no transposed left operand).
 */
function reconstructDense<A extends FloatArray>(
  acts: SparseActs<A>,
  p: SaeParams<A>,
  y: A,
  rows: number,
  dims: SaeDims,
  gBdec: A,
  ops: ArrayOps<A>,
): { yHat: A; dyHat: A; mse: number; fT: A } {
  const { dSae, dOut } = dims;
  const f = ops.zeros(rows * dSae);
  const fT = ops.zeros(dSae * rows);
  const { rowStart, index, value } = acts;
  for (let r = 0; r < rows; r++)
    for (let e = rowStart[r]; e < rowStart[r + 1]; e++) {
      f[r * dSae + index[e]] = value[e];
      fT[index[e] * rows + r] = value[e];
    }
  const yHat = ops.matmul(f, p.W_dec, rows, dSae, dOut);
  const dyHat = ops.zeros(rows * dOut);
  const bias = p.b_dec;
  let mse = 0;
  for (let r = 0; r < rows; r++) {
    const o = r * dOut;
    for (let i = 0; i < dOut; i++) yHat[o + i] += bias[i];
    mse = errorRow(yHat, y, o, dOut, rows, dyHat, gBdec, mse);
  }
  return { yHat, dyHat, mse: mse / rows, fT };
}

function dot(a: FloatArray, ao: number, b: FloatArray, bo: number, n: number): number {
  let s = 0;
  for (let i = 0; i < n; i++) s += a[ao + i] * b[bo + i];
  return s;
}

/** Squared norms of W_dec's rows. */
export function decoderRowNorms(W_dec: FloatArray, dSae: number, dOut: number): Float64Array {
  const norms = new Float64Array(dSae);
  for (let j = 0; j < dSae; j++) norms[j] = Math.sqrt(dot(W_dec, j * dOut, W_dec, j * dOut, dOut));
  return norms;
}

/** Forward, loss and gradients of one batch. */
export function batchLossAndGrads<A extends FloatArray>(
  p: SaeParams<A>,
  batch: BatchInput<A>,
  dims: SaeDims,
  s: LossSettings,
  ops: ArrayOps<A>,
): BatchResult<A> {
  const { dIn, dSae, dOut } = dims;
  const B = batch.rows;
  const { xIn, pre } = preActivations(p, batch.x, B, dims, s.applyBDecToInput, ops);
  const acts = activeLatents(pre, B, dSae, s, p.log_threshold, ops);
  const g: SaeParams<A> = {
    W_enc: ops.zeros(dIn * dSae),
    b_enc: ops.zeros(dSae),
    W_dec: ops.zeros(dSae * dOut),
    b_dec: ops.zeros(dOut),
  };
  const dense = ops.denseProducts === true;
  const { yHat, dyHat, mse, fT } = dense
    ? reconstructDense(acts, p, batch.y, B, dims, g.b_dec, ops)
    : { ...reconstruct(acts, p, batch.y, B, dOut, g.b_dec, ops), fT: null };
  if (s.architecture === "jumprelu") g.log_threshold = ops.zeros(dSae);
  // Dense: ∂L/∂pre gathered into gPre [B, d_sae] for W_enc's gradient x'ᵀ gPre. Sparse: W_enc's gradient
  // accumulated transposed as [d_sae, d_in] (rows stay contiguous).
  const gPre = dense ? ops.zeros(B * dSae) : null;
  const gWencT = dense ? null : ops.zeros(dSae * dIn);
  const addPreGrad = (r: number, j: number, gj: number) => {
    g.b_enc[j] += gj;
    if (gPre) {
      gPre[r * dSae + j] += gj;
      return;
    }
    const xo = r * dIn;
    const wo = j * dIn;
    for (let i = 0; i < dIn; i++) gWencT![wo + i] += gj * xIn[xo + i];
  };

  const norms = s.architecture === "standard" ? decoderRowNorms(p.W_dec, dSae, dOut) : null;
  let sparsity = 0;
  const fired = new Uint8Array(dSae);
  // Hot loop: typed arrays held in locals so that nothing is re-read through objects per element.
  const { rowStart, index, value } = acts;
  const Wd = p.W_dec;
  const gWd = g.W_dec;
  const gBenc = g.b_enc;
  for (let r = 0; r < B; r++) {
    const yo = r * dOut;
    const xo = r * dIn;
    for (let e = rowStart[r]; e < rowStart[r + 1]; e++) {
      const j = index[e];
      const v = value[e];
      fired[j] = 1;
      const wo = j * dOut;
      let df = 0;
      if (gPre) for (let i = 0; i < dOut; i++) df += dyHat[yo + i] * Wd[wo + i];
      else
        for (let i = 0; i < dOut; i++) {
          df += dyHat[yo + i] * Wd[wo + i];
          gWd[wo + i] += v * dyHat[yo + i];
        }
      if (norms) {
        // l1 · f_j · ‖W_dec[j]‖ / B
        sparsity += (s.l1 * v * norms[j]) / B;
        df += (s.l1 * norms[j]) / B;
        if (norms[j] > 0) {
          const c = (s.l1 * v) / (B * norms[j]);
          for (let i = 0; i < dOut; i++) gWd[wo + i] += c * Wd[wo + i];
        }
      }
      gBenc[j] += df;
      if (gPre) {
        gPre[r * dSae + j] = df;
        continue;
      }
      const go = j * dIn;
      for (let i = 0; i < dIn; i++) gWencT![go + i] += df * xIn[xo + i];
    }
  }

  if (s.architecture === "jumprelu") {
    // L0 = Σ H(pre − θ) / B; straight-through: ∂H/∂θ ≈ −K((pre − θ)/ε)/ε and ∂f/∂θ ≈ −θ·K(…)/ε, K = 1 on (−½, ½).
    const eps = s.bandwidth;
    const gTheta = new Float64Array(dSae);
    for (let r = 0; r < B; r++) {
      const ro = r * dSae;
      for (let j = 0; j < dSae; j++) {
        const theta = Math.exp(p.log_threshold![j]);
        const v = pre[ro + j];
        if (v > theta) sparsity += s.l1 / B;
        if (Math.abs(v - theta) >= eps / 2) continue;
        const df = dot(dyHat, r * dOut, p.W_dec, j * dOut, dOut);
        gTheta[j] += -(theta / eps) * df - s.l1 / (B * eps);
      }
    }
    for (let j = 0; j < dSae; j++) g.log_threshold![j] = gTheta[j] * Math.exp(p.log_threshold![j]);
  }

  let aux = 0;
  if ((s.architecture === "topk" || s.architecture === "batchtopk") && batch.dead) {
    aux = auxKLoss(p, batch, pre, yHat, dims, s, ops, g, addPreGrad);
  }

  if (gPre && fT) {
    // W_enc's gradient x'ᵀ gPre and W_dec's fᵀ ∂L/∂ŷ (added to the L1 and AuxK terms already there).
    const xInT = ops.zeros(dIn * B);
    for (let r = 0; r < B; r++) for (let i = 0; i < dIn; i++) xInT[i * B + r] = xIn[r * dIn + i];
    g.W_enc.set(ops.matmul(xInT, gPre, dIn, B, dSae));
    const gWdFit = ops.matmul(fT, dyHat, dSae, B, dOut);
    for (let i = 0; i < gWd.length; i++) gWd[i] += gWdFit[i];
  } else {
    // W_enc from its transposed accumulator.
    for (let j = 0; j < dSae; j++) for (let i = 0; i < dIn; i++) g.W_enc[i * dSae + j] = gWencT![j * dIn + i];
  }
  // With x' = x − b_dec, b_dec also gets −W_enc · ∂L/∂b_enc.
  if (s.applyBDecToInput) {
    for (let i = 0; i < dIn; i++) g.b_dec[i] -= dot(p.W_enc, i * dSae, g.b_enc, 0, dSae);
  }

  return {
    loss: mse + aux + sparsity,
    mse,
    aux,
    sparsity,
    l0: acts.index.length / B,
    fired,
    minKept: acts.minKept,
    grads: g,
  };
}

/** The AuxK term (adds its gradients into `g`); returns its value. */
function auxKLoss<A extends FloatArray>(
  p: SaeParams<A>,
  batch: BatchInput<A>,
  pre: A,
  yHat: A,
  dims: SaeDims,
  s: LossSettings,
  ops: ArrayOps<A>,
  g: SaeParams<A>,
  addPreGrad: (r: number, j: number, gj: number) => void,
): number {
  const { dSae, dOut } = dims;
  const dead = batch.dead!;
  const B = batch.rows;
  let nDead = 0;
  for (const d of dead) nDead += d;
  if (nDead === 0) return 0;
  // The candidates, ascending: each row's selection reads only the dead latents' pre-activations.
  const deadColumns = new Int32Array(nDead);
  for (let j = 0, c = 0; j < dSae; j++) if (dead[j]) deadColumns[c++] = j;
  // Gao et al. Appendix B.1: k_aux = d_model / 2, scaled down while few latents are dead.
  const half = Math.max(1, Math.floor(dOut / 2));
  const kAux = Math.min(half, nDead);
  const scale = s.auxCoefficient * Math.min(nDead / half, 1);
  let aux = 0;
  const resid = ops.zeros(dOut);
  const top = new Int32Array(kAux);
  // Hot loop (B rows × k_aux latents × d_out): arrays in locals, no iterators; the same operations in the same order.
  const Wd = p.W_dec;
  const gWd = g.W_dec;
  const y = batch.y;
  const c = (2 * scale) / B;
  for (let r = 0; r < B; r++) {
    const o = r * dSae;
    const found = rowTopK(pre, o, dSae, kAux, top, deadColumns);
    const yo = r * dOut;
    // d = ê − (y − ŷ), ê = Σ a_j W_dec[j] (no bias)
    for (let i = 0; i < dOut; i++) resid[i] = yHat[yo + i] - y[yo + i];
    for (let t = 0; t < found; t++) {
      const a = pre[o + top[t]];
      const wo = top[t] * dOut;
      for (let i = 0; i < dOut; i++) resid[i] += a * Wd[wo + i];
    }
    for (let i = 0; i < dOut; i++) aux += resid[i] * resid[i];
    for (let t = 0; t < found; t++) {
      const j = top[t];
      const ca = c * pre[o + j];
      const wo = j * dOut;
      addPreGrad(r, j, c * dot(resid, 0, Wd, wo, dOut));
      for (let i = 0; i < dOut; i++) gWd[wo + i] += ca * resid[i];
    }
  }
  return (scale * aux) / B;
}
