import type { GPT2Config } from "../weights/config.ts";
import type { LayerNormParams, ModelWeights } from "./weights.ts";

/** TransformerLens' default weight processing, each step switchable (all true = `from_pretrained` defaults). */
export interface ProcessingOptions {
  foldLn: boolean;
  centerWritingWeights: boolean;
  centerUnembed: boolean;
  foldValueBiases: boolean;
}

export const DEFAULT_PROCESSING: ProcessingOptions = {
  foldLn: true,
  centerWritingWeights: true,
  centerUnembed: true,
  foldValueBiases: true,
};
export const NO_PROCESSING: ProcessingOptions = {
  foldLn: false,
  centerWritingWeights: false,
  centerUnembed: false,
  foldValueBiases: false,
};

export function resolveProcessing(p: false | Partial<ProcessingOptions> | undefined): ProcessingOptions {
  if (p === false) return NO_PROCESSING;
  return { ...DEFAULT_PROCESSING, ...(p ?? {}) };
}

/** Applies the steps in TransformerLens' order, in place. */
export function processWeights(w: ModelWeights, cfg: GPT2Config, opts: ProcessingOptions): void {
  if (opts.foldLn) foldLayerNorms(w, cfg);
  if (opts.centerWritingWeights) centerWritingWeights(w, cfg);
  if (opts.centerUnembed) centerUnembed(w, cfg);
  if (opts.foldValueBiases) foldValueBiases(w, cfg);
}

/**
 * Folds a LayerNorm's w, b into a reading matrix viewed as [D, N] with the D axis strided:
 * element (d, n) at `base(n) + d * dStride`. b_new = b + ln_b @ W, W_new = ln_w[:,None] * W, then W is
 * centred over D (exact, because the LN output has zero mean).
 */
function foldInto(
  ln: LayerNormParams,
  W: Float32Array,
  bias: Float32Array,
  D: number,
  N: number,
  base: (n: number) => number,
  dStride: number,
): void {
  const lw = ln.w.data;
  const lb = ln.b.data;
  for (let n = 0; n < N; n++) {
    const o = base(n);
    let bAdd = 0;
    let mean = 0;
    for (let d = 0; d < D; d++) {
      const v = W[o + d * dStride];
      bAdd += lb[d] * v;
      mean += lw[d] * v;
    }
    mean /= D;
    bias[n] += bAdd;
    for (let d = 0; d < D; d++) {
      const i = o + d * dStride;
      W[i] = lw[d] * W[i] - mean;
    }
  }
}

function foldLayerNorms(w: ModelWeights, cfg: GPT2Config): void {
  const { dModel: D, nHeads: H, dHead: dh, dMlp } = cfg;
  for (const blk of w.blocks) {
    if (blk.ln1) {
      // W_Q [H, D, dh]: column (h, e) starts at h*D*dh + e, D stride dh; bias index h*dh + e.
      for (const [W, b] of [
        [blk.W_Q, blk.b_Q],
        [blk.W_K, blk.b_K],
        [blk.W_V, blk.b_V],
      ] as const) {
        foldInto(blk.ln1, W.data, b.data, D, H * dh, (n) => Math.floor(n / dh) * D * dh + (n % dh), dh);
      }
      blk.ln1 = null;
    }
    if (blk.ln2) {
      foldInto(blk.ln2, blk.W_in.data, blk.b_in.data, D, dMlp, (n) => n, dMlp);
      blk.ln2 = null;
    }
  }
  if (w.lnFinal) {
    foldInto(w.lnFinal, w.W_U.data, w.b_U.data, D, cfg.dVocab, (n) => n, cfg.dVocab);
    w.lnFinal = null;
  }
}

/** Subtracts the mean over the last (d_model) axis of every row. */
function centerRows(a: Float32Array, D: number): void {
  for (let o = 0; o < a.length; o += D) {
    let mean = 0;
    for (let d = 0; d < D; d++) mean += a[o + d];
    mean /= D;
    for (let d = 0; d < D; d++) a[o + d] -= mean;
  }
}

function centerWritingWeights(w: ModelWeights, cfg: GPT2Config): void {
  const D = cfg.dModel;
  centerRows(w.W_E.data, D);
  centerRows(w.W_pos.data, D);
  for (const blk of w.blocks) {
    centerRows(blk.W_O.data, D);
    centerRows(blk.b_O.data, D);
    centerRows(blk.W_out.data, D);
    centerRows(blk.b_out.data, D);
  }
}

/** Shifts every logit at a position by the same constant: processed logits = raw minus their vocab mean. */
function centerUnembed(w: ModelWeights, cfg: GPT2Config): void {
  centerRows(w.W_U.data, cfg.dVocab);
  centerRows(w.b_U.data, cfg.dVocab);
}

/** b_O += Σ_{h,e} b_V[h,e] W_O[h,e,:]; b_V = 0. Exact because each pattern row sums to 1. */
function foldValueBiases(w: ModelWeights, cfg: GPT2Config): void {
  const { dModel: D, nHeads: H, dHead: dh } = cfg;
  for (const blk of w.blocks) {
    const bV = blk.b_V.data;
    const WO = blk.W_O.data;
    const bO = blk.b_O.data;
    for (let he = 0; he < H * dh; he++) {
      const v = bV[he];
      if (v === 0) continue;
      for (let d = 0; d < D; d++) bO[d] += v * WO[he * D + d];
    }
    bV.fill(0);
  }
}
