import type { Kernels, LinearOp } from "../tensor/kernels.ts";
import { Tensor } from "../tensor/tensor.ts";
import type { GPT2Config } from "../weights/config.ts";
import { centerAndScale, divideRows } from "./activations.ts";
import type { HookDispatcher } from "./hooks.ts";
import type { LayerNormParams, ModelWeights } from "./weights.ts";

/**
 * Keys/values of earlier positions for one layer: k, v are [batchOrOne, len, n_heads, d_head]. `shared`
 * means one copy serves every batch element (e.g. the corrupted prompt's prefix under many patches).
 */
export interface PastKV {
  k: Float32Array;
  v: Float32Array;
  len: number;
  shared: boolean;
}

export interface ForwardArgs {
  batch: number;
  /** Positions computed in this call (after `pastLen` earlier ones). */
  pos: number;
  pastLen?: number;
  /** [batch, pos] token ids, when starting at the embedding. */
  tokens?: Int32Array;
  /** [batch, pos, d_model]: the residual entering block `startAtLayer`. */
  residual?: Float32Array;
  startAtLayer?: number;
  /** Exclusive: stop before this block and return the residual (no ln_final, no logits). */
  stopAtLayer?: number;
  past?: readonly (PastKV | null)[];
  keepKV?: boolean;
  hooks: HookDispatcher;
  /** Which logits to compute: every position, each prompt's last real position, or none. */
  logits: "all" | "last" | "none";
  /** Real (unpadded) number of new positions per prompt; used by `logits: "last"`. */
  lengths?: readonly number[];
  /**
   * Only the final position's output is wanted (e.g. a patching metric): the last block computes keys
   * and values at every position but its query side, attention output and MLP at the final position
   * only, and ln_final/logits see [batch, 1, ...]. Needs an unpadded batch.
   */
  finalPositionOnly?: boolean;
}

export interface ForwardResult {
  /** [batch, pos, d_vocab], or [batch, 1, d_vocab] for "last"; null for "none" or when stopped early. */
  logits: Tensor | null;
  /** The residual after the last block run ([batch, pos, d_model]); ln_final's input when run to the end. */
  residual: Tensor;
  presentKV: PastKV[] | null;
}

interface BlockOps {
  qkv: LinearOp; // [D] → [3 * H * dh], columns Q | K | V, head-major within each
  o: LinearOp; // [H * dh] → [D], with b_O
  mlpIn: LinearOp;
  mlpOut: LinearOp;
}

/** The GPT-2 forward pass with hook points, over prepared kernel ops. */
export class ForwardEngine {
  private readonly ops: BlockOps[];
  private readonly unembed: LinearOp;

  constructor(
    readonly cfg: GPT2Config,
    readonly weights: ModelWeights,
    readonly kernels: Kernels,
  ) {
    const { dModel: D, nHeads: H, dHead: dh, dMlp } = cfg;
    this.ops = weights.blocks.map((b) => ({
      qkv: kernels.linear(
        fuseQkv(b.W_Q.data, b.W_K.data, b.W_V.data, H, D, dh),
        D,
        3 * H * dh,
        concat3(b.b_Q.data, b.b_K.data, b.b_V.data),
      ),
      o: kernels.linear(b.W_O.data, H * dh, D, b.b_O.data),
      mlpIn: kernels.linear(b.W_in.data, D, dMlp, b.b_in.data),
      mlpOut: kernels.linear(b.W_out.data, dMlp, D, b.b_out.data),
    }));
    this.unembed = kernels.linear(weights.W_U.data, D, cfg.dVocab, weights.b_U.data);
  }

  /** The kernel op of a block's projection, for the backward pass. */
  blockOps(layer: number): Readonly<BlockOps> {
    return this.ops[layer];
  }
  unembedOp(): LinearOp {
    return this.unembed;
  }

  dispose(): void {
    for (const o of this.ops) for (const op of Object.values(o)) op.dispose();
    this.unembed.dispose();
  }

  forward(a: ForwardArgs): ForwardResult {
    const { cfg } = this;
    const { batch: B, pos: P } = a;
    const D = cfg.dModel;
    const pastLen = a.pastLen ?? 0;
    const start = a.startAtLayer ?? 0;
    const stop = a.stopAtLayer ?? cfg.nLayers;
    if (start < 0 || start > cfg.nLayers || stop < start || stop > cfg.nLayers) {
      throw new Error(`Bad layer range: start ${start}, stop ${stop} for a ${cfg.nLayers}-layer model`);
    }
    if (pastLen + P > cfg.nCtx) {
      throw new Error(
        `Sequence of ${pastLen + P} positions exceeds the model's context of ${cfg.nCtx} tokens`,
      );
    }
    const h = a.hooks;
    let resid: Tensor;
    if (a.residual) {
      resid = new Tensor(a.residual, [B, P, D]);
    } else {
      if (start !== 0) throw new Error("startAtLayer > 0 needs a residual input [batch, pos, d_model]");
      if (!a.tokens) throw new Error("forward needs tokens or a residual");
      resid = this.embed(a.tokens, B, P, pastLen, h);
    }
    const present: PastKV[] | null = a.keepKV ? [] : null;
    const finalOnly = (a.finalPositionOnly ?? false) && stop === cfg.nLayers;
    if (finalOnly && a.lengths?.some((n) => n !== P)) {
      throw new Error("finalPositionOnly needs an unpadded batch: every prompt must fill all positions");
    }
    for (let l = start; l < stop; l++) {
      const queryLast = finalOnly && l === stop - 1;
      resid = this.block(l, resid, B, P, pastLen, a.past?.[l] ?? null, h, present, queryLast);
    }
    if (stop < cfg.nLayers) return { logits: null, residual: resid, presentKV: present };
    // With finalPositionOnly the residual holds only the final position ([B, 1, D]).
    const outP = resid.shape[1];
    const rows = B * outP;
    const normalized = this.layerNorm("ln_final", resid.data, B, outP, this.weights.lnFinal, h);
    let logits: Tensor | null = null;
    if (a.logits === "all") {
      logits = new Tensor(this.unembed.forward(normalized.data, rows), [B, outP, cfg.dVocab]);
    } else if (a.logits === "last") {
      const last = new Float32Array(B * D);
      for (let b = 0; b < B; b++) {
        const p = outP === P ? (a.lengths?.[b] ?? P) - 1 : outP - 1;
        last.set(normalized.data.subarray((b * outP + p) * D, (b * outP + p + 1) * D), b * D);
      }
      logits = new Tensor(this.unembed.forward(last, B), [B, 1, cfg.dVocab]);
    }
    return { logits, residual: resid, presentKV: present };
  }

  /** LayerNorm (or LNPre when folded) with its two hook points; the scale hook's value is the one used. */
  private layerNorm(
    prefix: string,
    x: Float32Array,
    B: number,
    P: number,
    ln: LayerNormParams | null,
    h: HookDispatcher,
  ): Tensor {
    const D = this.cfg.dModel;
    const { centered, scale } = centerAndScale(x, B * P, D, this.cfg.lnEps);
    const scaleT = h.fire(`${prefix}.hook_scale`, new Tensor(scale, [B, P, 1]));
    const y = applyAffine(divideRows(centered, scaleT.data, D), ln, D);
    return h.fire(`${prefix}.hook_normalized`, new Tensor(y, [B, P, D]));
  }

  private embed(tokens: Int32Array, B: number, P: number, pastLen: number, h: HookDispatcher): Tensor {
    const { dModel: D, dVocab } = this.cfg;
    const WE = this.weights.W_E.data;
    const WP = this.weights.W_pos.data;
    const e = new Float32Array(B * P * D);
    const pe = new Float32Array(B * P * D);
    for (let r = 0; r < B * P; r++) {
      const t = tokens[r];
      if (t < 0 || t >= dVocab) throw new Error(`Bad token id ${t}: token ids must be in [0, ${dVocab})`);
      e.set(WE.subarray(t * D, (t + 1) * D), r * D);
      const p = pastLen + (r % P);
      pe.set(WP.subarray(p * D, (p + 1) * D), r * D);
    }
    const embed = h.fire("hook_embed", new Tensor(e, [B, P, D]));
    const posEmbed = h.fire("hook_pos_embed", new Tensor(pe, [B, P, D]));
    return new Tensor(add(embed.data, posEmbed.data), [B, P, D]);
  }

  private block(
    l: number,
    residIn: Tensor,
    B: number,
    P: number,
    pastLen: number,
    past: PastKV | null,
    h: HookDispatcher,
    present: PastKV[] | null,
    queryLast: boolean,
  ): Tensor {
    const { dModel: D, nHeads: H, dHead: dh, dMlp } = this.cfg;
    const w = this.weights.blocks[l];
    const ops = this.ops[l];
    const name = (s: string) => `blocks.${l}.${s}`;
    const HD = H * dh;

    const residPre = h.fire(name("hook_resid_pre"), residIn);
    const x1 = this.layerNorm(name("ln1"), residPre.data, B, P, w.ln1, h);

    const qkv = ops.qkv.forward(x1.data, B * P);
    const [qRaw, kRaw, vRaw] = splitQkv(qkv, B * P, HD);
    const q = h.fire(name("attn.hook_q"), new Tensor(qRaw, [B, P, H, dh]));
    const k = h.fire(name("attn.hook_k"), new Tensor(kRaw, [B, P, H, dh]));
    const v = h.fire(name("attn.hook_v"), new Tensor(vRaw, [B, P, H, dh]));

    const T = pastLen + P;
    if (pastLen > 0 && !past)
      throw new Error(`Layer ${l}: ${pastLen} earlier positions but no cached keys/values`);
    if (past && past.len !== pastLen)
      throw new Error(`Layer ${l}: cached keys cover ${past.len} positions, expected ${pastLen}`);
    // Keys/values of every position [B, T, H, dh]: the fresh ones, or past ∪ fresh when continuing.
    const kv = past
      ? concatKV(past, k.data, v.data, B, P, HD)
      : { k: k.data, v: v.data, len: T, shared: false };
    if (present) present.push(kv);

    // From here on only query positions matter: all new ones, or just the final one (queryLast).
    const Q = queryLast ? 1 : P;
    const rows = B * Q;
    const qRows = queryLast ? lastRows(q.data, B, P, HD) : q.data;
    const residRows = queryLast ? lastRows(residPre.data, B, P, D) : residPre.data;
    const firstQuery = pastLen + P - Q;
    const scores = attentionScores(this.kernels, qRows, kv.k, B, Q, T, firstQuery, H, dh);
    const scoresT = h.fire(name("attn.hook_attn_scores"), new Tensor(scores, [B, H, Q, T]));
    const pattern = h.fire(
      name("attn.hook_pattern"),
      new Tensor(softmaxRows(scoresT.data, B * H * Q, T), [B, H, Q, T]),
    );
    const z = h.fire(
      name("attn.hook_z"),
      new Tensor(mixValues(this.kernels, pattern.data, kv.v, B, Q, T, H, dh), [B, Q, H, dh]),
    );

    let attnOut: Float32Array;
    if (h.wantsOptional(l, "attn.hook_result")) {
      const result = h.fire(
        name("attn.hook_result"),
        new Tensor(headResults(z.data, w.W_O.data, rows, H, dh, D), [B, Q, H, D]),
      );
      attnOut = sumHeads(result.data, w.b_O.data, rows, H, D);
    } else {
      attnOut = ops.o.forward(z.data, rows);
    }
    const attnOutT = h.fire(name("hook_attn_out"), new Tensor(attnOut, [B, Q, D]));
    const residMid = h.fire(name("hook_resid_mid"), new Tensor(add(residRows, attnOutT.data), [B, Q, D]));

    const x2 = this.layerNorm(name("ln2"), residMid.data, B, Q, w.ln2, h);
    const pre = h.fire(name("mlp.hook_pre"), new Tensor(ops.mlpIn.forward(x2.data, rows), [B, Q, dMlp]));
    const post = h.fire(
      name("mlp.hook_post"),
      new Tensor(this.kernels.activation(this.cfg.act, pre.data), [B, Q, dMlp]),
    );
    const mlpOut = h.fire(name("hook_mlp_out"), new Tensor(ops.mlpOut.forward(post.data, rows), [B, Q, D]));
    return h.fire(name("hook_resid_post"), new Tensor(add(residMid.data, mlpOut.data), [B, Q, D]));
  }
}

function add(a: Float32Array, b: Float32Array): Float32Array {
  const out = new Float32Array(a.length);
  for (let i = 0; i < a.length; i++) out[i] = a[i] + b[i];
  return out;
}

/** y * w + b per row (LayerNorm's affine part), or y itself when the LN was folded. */
function applyAffine(y: Float32Array, ln: LayerNormParams | null, D: number): Float32Array {
  if (!ln) return y;
  const w = ln.w.data;
  const b = ln.b.data;
  for (let o = 0; o < y.length; o += D) for (let d = 0; d < D; d++) y[o + d] = y[o + d] * w[d] + b[d];
  return y;
}

/** [H, D, dh] x3 → [D, 3*H*dh] so one product yields q | k | v for all heads. */
function fuseQkv(
  WQ: Float32Array,
  WK: Float32Array,
  WV: Float32Array,
  H: number,
  D: number,
  dh: number,
): Float32Array {
  const HD = H * dh;
  const out = new Float32Array(D * 3 * HD);
  [WQ, WK, WV].forEach((W, which) => {
    for (let hh = 0; hh < H; hh++)
      for (let d = 0; d < D; d++) {
        const src = (hh * D + d) * dh;
        out.set(W.subarray(src, src + dh), d * 3 * HD + which * HD + hh * dh);
      }
  });
  return out;
}

function concat3(a: Float32Array, b: Float32Array, c: Float32Array): Float32Array {
  const out = new Float32Array(a.length + b.length + c.length);
  out.set(a, 0);
  out.set(b, a.length);
  out.set(c, a.length + b.length);
  return out;
}

function splitQkv(qkv: Float32Array, rows: number, HD: number): [Float32Array, Float32Array, Float32Array] {
  const q = new Float32Array(rows * HD);
  const k = new Float32Array(rows * HD);
  const v = new Float32Array(rows * HD);
  for (let r = 0; r < rows; r++) {
    const o = r * 3 * HD;
    q.set(qkv.subarray(o, o + HD), r * HD);
    k.set(qkv.subarray(o + HD, o + 2 * HD), r * HD);
    v.set(qkv.subarray(o + 2 * HD, o + 3 * HD), r * HD);
  }
  return [q, k, v];
}

/** [B, N, H, dh] → [B, H, N, dh]: each head's rows contiguous, as batched products want them. */
export function headsFirst(x: Float32Array, B: number, N: number, H: number, dh: number): Float32Array {
  const out = new Float32Array(x.length);
  for (let b = 0; b < B; b++)
    for (let n = 0; n < N; n++)
      for (let hh = 0; hh < H; hh++) {
        const src = ((b * N + n) * H + hh) * dh;
        out.set(x.subarray(src, src + dh), ((b * H + hh) * N + n) * dh);
      }
  return out;
}

/** [B, H, N, dh] → [B, N, H, dh]. */
export function positionsFirst(x: Float32Array, B: number, N: number, H: number, dh: number): Float32Array {
  const out = new Float32Array(x.length);
  for (let b = 0; b < B; b++)
    for (let hh = 0; hh < H; hh++)
      for (let n = 0; n < N; n++) {
        const src = ((b * H + hh) * N + n) * dh;
        out.set(x.subarray(src, src + dh), ((b * N + n) * H + hh) * dh);
      }
  return out;
}

/** The last of P rows of width W per batch element: [B, P, W] → [B, 1, W]. */
function lastRows(x: Float32Array, B: number, P: number, W: number): Float32Array {
  const out = new Float32Array(B * W);
  for (let b = 0; b < B; b++) out.set(x.subarray(((b + 1) * P - 1) * W, (b + 1) * P * W), b * W);
  return out;
}

/**
 * Scaled scores q·k/sqrt(dh) [B, H, P, T] for P queries at absolute positions firstQuery..; -inf where
 * the key is after the query (causal mask).
 */
function attentionScores(
  kernels: Kernels,
  q: Float32Array,
  k: Float32Array,
  B: number,
  P: number,
  T: number,
  firstQuery: number,
  H: number,
  dh: number,
): Float32Array {
  const scores = kernels.bmm(headsFirst(q, B, P, H, dh), headsFirst(k, B, T, H, dh), B * H, P, dh, T, true);
  const scale = 1 / Math.sqrt(dh);
  for (let r = 0; r < B * H * P; r++) {
    const o = r * T;
    const limit = firstQuery + (r % P); // causal: key j ≤ query's absolute position
    for (let j = 0; j <= limit; j++) scores[o + j] *= scale;
    for (let j = limit + 1; j < T; j++) scores[o + j] = Number.NEGATIVE_INFINITY;
  }
  return scores;
}

function softmaxRows(scores: Float32Array, rows: number, T: number): Float32Array {
  const out = new Float32Array(scores.length);
  for (let r = 0; r < rows; r++) {
    const o = r * T;
    let max = Number.NEGATIVE_INFINITY;
    for (let j = 0; j < T; j++) if (scores[o + j] > max) max = scores[o + j];
    let sum = 0;
    for (let j = 0; j < T; j++) {
      const e = scores[o + j] === Number.NEGATIVE_INFINITY ? 0 : Math.exp(scores[o + j] - max);
      out[o + j] = e;
      sum += e;
    }
    const inv = 1 / sum;
    for (let j = 0; j < T; j++) out[o + j] *= inv;
  }
  return out;
}

/** z = pattern @ v per head: [B, P, H, dh]. */
function mixValues(
  kernels: Kernels,
  pattern: Float32Array,
  v: Float32Array,
  B: number,
  P: number,
  T: number,
  H: number,
  dh: number,
): Float32Array {
  const zHeads = kernels.bmm(pattern, headsFirst(v, B, T, H, dh), B * H, P, T, dh, false);
  return positionsFirst(zHeads, B, P, H, dh);
}

/** Per-head outputs z[..., h, :] @ W_O[h] (no b_O): [rows, H, D]. */
function headResults(
  z: Float32Array,
  WO: Float32Array,
  rows: number,
  H: number,
  dh: number,
  D: number,
): Float32Array {
  const out = new Float32Array(rows * H * D);
  for (let r = 0; r < rows; r++)
    for (let hh = 0; hh < H; hh++) {
      const oo = (r * H + hh) * D;
      for (let e = 0; e < dh; e++) {
        const a = z[(r * H + hh) * dh + e];
        const wo = (hh * dh + e) * D;
        for (let d = 0; d < D; d++) out[oo + d] += a * WO[wo + d];
      }
    }
  return out;
}

function sumHeads(result: Float32Array, bO: Float32Array, rows: number, H: number, D: number): Float32Array {
  const out = new Float32Array(rows * D);
  for (let r = 0; r < rows; r++) {
    out.set(bO, r * D);
    for (let hh = 0; hh < H; hh++) {
      const o = (r * H + hh) * D;
      for (let d = 0; d < D; d++) out[r * D + d] += result[o + d];
    }
  }
  return out;
}

/** Keys/values of all positions so far, per batch element: [B, pastLen + P, H, dh]. */
function concatKV(
  past: PastKV | null,
  k: Float32Array,
  v: Float32Array,
  B: number,
  P: number,
  HD: number,
): PastKV {
  const pastLen = past?.len ?? 0;
  const T = pastLen + P;
  const outK = new Float32Array(B * T * HD);
  const outV = new Float32Array(B * T * HD);
  for (let b = 0; b < B; b++) {
    if (past) {
      const src = (past.shared ? 0 : b) * pastLen * HD;
      outK.set(past.k.subarray(src, src + pastLen * HD), b * T * HD);
      outV.set(past.v.subarray(src, src + pastLen * HD), b * T * HD);
    }
    outK.set(k.subarray(b * P * HD, (b + 1) * P * HD), (b * T + pastLen) * HD);
    outV.set(v.subarray(b * P * HD, (b + 1) * P * HD), (b * T + pastLen) * HD);
  }
  return { k: outK, v: outV, len: T, shared: false };
}
