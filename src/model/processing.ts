import type { BlockWeights, LayerNormParams, ModelWeights } from "../weights/canonical-weights.ts";
import type { ModelConfig } from "../weights/config.ts";
import type { HeadWeights } from "../weights/families/index.ts";

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

/**
 * Applies the steps in TransformerLens' order, in place. For RMSNorm models, as TransformerLens does, the
 * norm's gain is folded without centring, and writing weights are not centred (RMSNorm does not remove
 * the mean, so centring them would change the model). Every step touches one part at a time (a block, the
 * embeddings, the head), so a model can be processed block by block as it is loaded.
 */
export function processWeights(w: ModelWeights, cfg: ModelConfig, opts: ProcessingOptions): void {
  processEmbeddings(w, cfg, opts);
  for (const blk of w.blocks) processBlock(blk, cfg, opts);
  processHead(w, cfg, opts);
}

/**
 * Whether writing weights (W_E, W_pos, W_O, W_out and their biases) are centred: asked for, and a
 * LayerNorm model. A W_E read from the file later is centred row by row by the same rule.
 */
export function centresWritingWeights(cfg: ModelConfig, opts: ProcessingOptions): boolean {
  return opts.centerWritingWeights && cfg.normalization === "layernorm";
}

/**
 * Whether the unembedding is centred: asked for, and the logits are not soft-capped. Centring shifts
 * every raw logit of a position by one constant, which a softmax ignores; cap · tanh(l / cap) of a shifted
 * logit is not a shifted capped logit, so for Gemma 2 it would change the model.
 */
export function centresUnembed(cfg: ModelConfig, opts: ProcessingOptions): boolean {
  return opts.centerUnembed && (cfg.finalSoftCap ?? null) === null;
}

/** W_E may be null: the model reads its rows from the checkpoint file and centres them there. */
export function processEmbeddings(
  w: { W_E: ModelWeights["W_E"] | null; W_pos: ModelWeights["W_pos"] },
  cfg: ModelConfig,
  opts: ProcessingOptions,
): void {
  if (!centresWritingWeights(cfg, opts)) return;
  if (w.W_E) centerRows(w.W_E.data, cfg.dModel);
  if (w.W_pos) centerRows(w.W_pos.data, cfg.dModel);
}

export function processBlock(blk: BlockWeights, cfg: ModelConfig, opts: ProcessingOptions): void {
  if (opts.foldLn) foldBlockNorms(blk, cfg);
  if (centresWritingWeights(cfg, opts)) centerBlockWriters(blk, cfg);
  if (opts.foldValueBiases) foldValueBiases(blk, cfg);
}

export function processHead(w: HeadWeights, cfg: ModelConfig, opts: ProcessingOptions): void {
  if (opts.foldLn && w.lnFinal) {
    const centre = cfg.normalization === "layernorm";
    foldInto(w.lnFinal, columns(w.W_U.data, w.b_U.data, cfg.dVocab), cfg.dModel, centre);
    w.lnFinal = null;
  }
  if (centresUnembed(cfg, opts)) {
    // Shifts every logit at a position by the same constant: processed logits = raw minus their vocab mean.
    centerRows(w.W_U.data, cfg.dVocab);
    centerRows(w.b_U.data, cfg.dVocab);
  }
}

/** A reading matrix viewed as [D, N] with the D axis strided: element (d, n) at `base(n) + d * dStride`. */
interface ReadingMatrix {
  W: Float32Array;
  bias: Float32Array;
  N: number;
  base: (n: number) => number;
  dStride: number;
}

/**
 * Folds a norm's w, b into a reading matrix: b_new = b + ln_b @ W, W_new = ln_w[:,None] * W, then for
 * LayerNorm W is centred over D (exact, because the LN output has zero mean; RMSNorm's is not).
 */
function foldInto(ln: LayerNormParams, m: ReadingMatrix, D: number, centre: boolean): void {
  const { W, bias, N, base, dStride } = m;
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
    mean = centre ? mean / D : 0;
    bias[n] += bAdd;
    for (let d = 0; d < D; d++) {
      const i = o + d * dStride;
      W[i] = lw[d] * W[i] - mean;
    }
  }
}

/** [N, D] stored as [D, N] (row-major): column n starts at n, D stride N. */
function columns(W: Float32Array, bias: Float32Array, N: number): ReadingMatrix {
  return { W, bias, N, base: (n) => n, dStride: N };
}

function foldBlockNorms(blk: BlockWeights, cfg: ModelConfig): void {
  const { dModel: D, dHead: dh, dMlp } = cfg;
  const centre = cfg.normalization === "layernorm";
  if (blk.ln1) {
    // W_Q [heads, D, dh]: column (h, e) starts at h*D*dh + e, D stride dh; bias index h*dh + e.
    for (const [W, b] of [
      [blk.W_Q, blk.b_Q],
      [blk.W_K, blk.b_K],
      [blk.W_V, blk.b_V],
    ] as const) {
      const N = W.shape[0] * dh;
      const base = (n: number) => Math.floor(n / dh) * D * dh + (n % dh);
      foldInto(blk.ln1, { W: W.data, bias: b.data, N, base, dStride: dh }, D, centre);
    }
    blk.ln1 = null;
  }
  if (blk.ln2) {
    foldInto(blk.ln2, columns(blk.W_in.data, blk.b_in.data, dMlp), D, centre);
    // The gate has no bias: a norm bias (LayerNorm only, not in any gated family) cannot fold into it.
    if (blk.W_gate) foldInto(blk.ln2, columns(blk.W_gate.data, new Float32Array(dMlp), dMlp), D, centre);
    blk.ln2 = null;
  }
}

/** Subtracts the mean over the last axis (of length D) of every row. */
export function centerRows(a: Float32Array, D: number): void {
  for (let o = 0; o < a.length; o += D) {
    let mean = 0;
    for (let d = 0; d < D; d++) mean += a[o + d];
    mean /= D;
    for (let d = 0; d < D; d++) a[o + d] -= mean;
  }
}

function centerBlockWriters(blk: BlockWeights, cfg: ModelConfig): void {
  const D = cfg.dModel;
  centerRows(blk.W_O.data, D);
  centerRows(blk.b_O.data, D);
  centerRows(blk.W_out.data, D);
  centerRows(blk.b_out.data, D);
}

/**
 * b_O += Σ_{h,e} b_V[kv(h),e] W_O[h,e,:]; b_V = 0, with kv(h) the key/value head query head h reads
 * (itself without grouped-query attention). Exact because each pattern row sums to 1.
 */
function foldValueBiases(blk: BlockWeights, cfg: ModelConfig): void {
  const { dModel: D, nHeads: H, nKvHeads: Hkv, dHead: dh } = cfg;
  const group = H / Hkv;
  const bV = blk.b_V.data;
  const WO = blk.W_O.data;
  const bO = blk.b_O.data;
  for (let h = 0; h < H; h++)
    for (let e = 0; e < dh; e++) {
      const v = bV[Math.floor(h / group) * dh + e];
      if (v === 0) continue;
      const o = (h * dh + e) * D;
      for (let d = 0; d < D; d++) bO[d] += v * WO[o + d];
    }
  bV.fill(0);
}
