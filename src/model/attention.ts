/**
 * Attention's pieces, in one place, each with its backward: the mask (causal, optionally within a sliding
 * window), the scaled scores, the softmax, the mix of values and the per-head outputs. The forward pass
 * (forward.ts), the backward pass (src/gradients) and the edge-masked pass (src/circuits) all call these;
 * they differ in what they record and mask, not in the maths.
 */
import type { Kernels } from "../tensor/kernels.ts";
import type { Architecture, ModelShape } from "../weights/config.ts";
import { headsFirst, positionsFirst } from "./layouts.ts";

/** Which keys each of `queries` queries at absolute positions firstQuery.. may see. */
export interface CausalMask {
  queries: number;
  firstQuery: number;
  /** Sliding window in positions, or null. */
  window: number | null;
}

/** Keys [first, last] query row r of a [*, queries, T] score block may see. */
export function visibleKeys(m: CausalMask, r: number): [number, number] {
  const last = m.firstQuery + (r % m.queries); // causal: key j ≤ query's absolute position
  return [m.window === null ? 0 : Math.max(0, last - m.window + 1), last];
}

/** The sizes of one attention computation. */
export interface AttentionShape {
  batch: number;
  queries: number;
  keys: number;
  nHeads: number;
  nKvHeads: number;
  dHead: number;
}

/**
 * How raw q·k becomes a score: scaled (1/sqrt(d_head) unless the family says otherwise) and, where the
 * family soft-caps attention logits (Gemma 2), squashed to cap · tanh(s / cap).
 */
export interface ScoreTransform {
  scale: number;
  softCap: number | null;
}

/** The standard transform: 1/sqrt(d_head), no soft-cap. */
export function plainScores(dHead: number): ScoreTransform {
  return { scale: 1 / Math.sqrt(dHead), softCap: null };
}

/** A model's transform: its own scale (Gemma 2: query_pre_attn_scalar^-0.5) and attention soft-cap, if any. */
export function scoreTransformOf(cfg: Pick<ModelShape, "dHead"> & Partial<Architecture>): ScoreTransform {
  return { scale: cfg.attnScale ?? 1 / Math.sqrt(cfg.dHead), softCap: cfg.attnSoftCap ?? null };
}

/** Soft-capping (Gemma 2's attention and final logits): cap · tanh(x / cap), smooth and within ±cap. */
export function softCap(x: number, cap: number): number {
  return cap * Math.tanh(x / cap);
}

/** d softCap(x) / dx from the capped value s = softCap(x): 1 − tanh², with tanh = s / cap. */
export function softCapSlope(s: number, cap: number): number {
  const th = s / cap;
  return 1 - th * th;
}

/**
 * Raw q·k [rows, T] → scores, in place: transformed where the row's query may see the key, -inf where the
 * key is after the query (causal mask) or, with a sliding window, `window` or more positions before it.
 */
export function maskScores(
  scores: Float32Array,
  a: { rows: number; keys: number; mask: CausalMask; transform: ScoreTransform },
): Float32Array {
  const { keys: T, mask } = a;
  const { scale, softCap: cap } = a.transform;
  for (let r = 0; r < a.rows; r++) {
    const o = r * T;
    const [first, limit] = visibleKeys(mask, r);
    for (let j = 0; j < first; j++) scores[o + j] = Number.NEGATIVE_INFINITY;
    for (let j = first; j <= limit; j++) scores[o + j] *= scale;
    // Capped before the mask, as Hugging Face and TransformerLens do (masked entries are −inf either way).
    if (cap !== null) for (let j = first; j <= limit; j++) scores[o + j] = softCap(scores[o + j], cap);
    for (let j = limit + 1; j < T; j++) scores[o + j] = Number.NEGATIVE_INFINITY;
  }
  return scores;
}

/**
 * Scores [n, Q, T] of heads-first queries [n, Q, dh] and keys [n, T, dh] (n = heads × batch, in either
 * order), masked and transformed (maskScores).
 */
export function headScores(
  kernels: Kernels,
  q: Float32Array,
  k: Float32Array,
  a: { n: number; queries: number; keys: number; dHead: number; mask: CausalMask; transform: ScoreTransform },
): Float32Array {
  const scores = kernels.bmm(q, k, a.n, a.queries, a.dHead, a.keys, true);
  return maskScores(scores, { rows: a.n * a.queries, keys: a.keys, mask: a.mask, transform: a.transform });
}

/**
 * Scores [B, H, Q, T] for Q queries at absolute positions firstQuery.. (headScores).
 * q: [B, Q, H, dh]; k: [B, T, Hkv, dh]. `transform` defaults to plainScores(dh).
 */
export function attentionScores(
  kernels: Kernels,
  q: Float32Array,
  k: Float32Array,
  s: AttentionShape & CausalMask & { transform?: ScoreTransform },
): Float32Array {
  const { batch: B, queries: Q, keys: T, nHeads: H, nKvHeads: Hkv, dHead: dh } = s;
  const kHeads = headsFirst(k, B, T, Hkv, dh, H / Hkv);
  return headScores(kernels, headsFirst(q, B, Q, H, dh), kHeads, {
    n: B * H,
    queries: Q,
    keys: T,
    dHead: dh,
    mask: s,
    transform: s.transform ?? plainScores(dh),
  });
}

/**
 * Softmax of each row of T. With `mask`, entries outside each row's visible keys are known to be -inf
 * (their probability is exactly 0) and are skipped. `into` may be `scores` itself (in place: the masked
 * entries are then set to 0).
 */
export function softmaxRows(
  scores: Float32Array,
  a: { rows: number; keys: number; mask: CausalMask | null; into?: Float32Array },
): Float32Array {
  const T = a.keys;
  const out = a.into ?? new Float32Array(scores.length);
  const inPlace = out === scores;
  for (let r = 0; r < a.rows; r++) {
    const o = r * T;
    const [lo, hi] = a.mask ? visibleKeys(a.mask, r) : [0, T - 1];
    let max = Number.NEGATIVE_INFINITY;
    for (let j = lo; j <= hi; j++) if (scores[o + j] > max) max = scores[o + j];
    let sum = 0;
    for (let j = lo; j <= hi; j++) {
      const e = scores[o + j] === Number.NEGATIVE_INFINITY ? 0 : Math.exp(scores[o + j] - max);
      out[o + j] = e;
      sum += e;
    }
    const inv = 1 / sum;
    for (let j = lo; j <= hi; j++) out[o + j] *= inv;
    if (inPlace) {
      for (let j = 0; j < lo; j++) out[o + j] = 0;
      for (let j = hi + 1; j < T; j++) out[o + j] = 0;
    }
  }
  return out;
}

/**
 * Softmax backward of one row: d/d score_j = p_j (g_j − Σ_k p_k g_k) for j < `count`, into `into` (float64);
 * `dot` = Σ_k p_k g_k over the whole row. The row is pattern[offset ..]; gPattern and `into` start at 0.
 */
export function softmaxBackwardRow(a: {
  pattern: Float32Array;
  offset: number;
  gPattern: Float64Array;
  dot: number;
  count: number;
  into: Float64Array;
}): Float64Array {
  const { pattern, offset: o, gPattern, dot, into } = a;
  for (let j = 0; j < a.count; j++) into[j] = pattern[o + j] * (gPattern[j] - dot);
  return into;
}

/** d/d raw q·k of d/d score, for a score `s` (after the transform): scale, and the soft-cap's 1 − tanh². */
export function scoreTransformDerivative(t: ScoreTransform, s: number): number {
  return t.softCap === null ? t.scale : t.scale * softCapSlope(s, t.softCap);
}

/** z = pattern @ v per head: [B, Q, H, dh]; v: [B, T, Hkv, dh]. */
export function mixValues(
  kernels: Kernels,
  pattern: Float32Array,
  v: Float32Array,
  s: AttentionShape,
): Float32Array {
  const { batch: B, queries: Q, keys: T, nHeads: H, nKvHeads: Hkv, dHead: dh } = s;
  const vHeads = headsFirst(v, B, T, Hkv, dh, H / Hkv);
  return positionsFirst(kernels.bmm(pattern, vHeads, B * H, Q, T, dh, false), B, Q, H, dh);
}

/** Per-head outputs z[..., h, :] @ W_O[h] (no b_O): [rows, H, D]. */
export function headResults(
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

export function sumHeads(
  result: Float32Array,
  bO: Float32Array,
  rows: number,
  H: number,
  D: number,
): Float32Array {
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

/**
 * Backward of one attention layer from d/d z:
 * scores[b,h,i,j] = t(q[b,i,h]·k[b,j,g(h)]) for the keys query i sees (−inf elsewhere; t = ScoreTransform),
 * pattern = softmax over j, z[b,i,h] = Σ_j pattern[b,h,i,j] v[b,j,g(h)], where g(h) = floor(h / (H / Hkv))
 * is the key/value head query head h reads (grouped-query attention; g(h) = h when Hkv = H).
 * q and k are what the scores read: after rotation for rotary models. Each gradient is w.r.t. that hook's
 * activation as TransformerLens defines it; a key/value head's gradient sums over the query heads sharing it.
 * With `frozenPattern` the pattern is a constant (a linearised pass, as attribution graphs take it): only
 * the values and the pattern's own gradient are computed; scores, q and k get none.
 */
export interface AttentionGrads {
  gPattern: Float32Array; // [B, H, P, P]
  gScores: Float32Array; // [B, H, P, P]; 0 at masked entries (the softmax gives them no weight)
  gQ: Float32Array; // [B, P, H, dh]
  gK: Float32Array; // [B, P, Hkv, dh]
  gV: Float32Array; // [B, P, Hkv, dh]
}

export interface AttentionBackwardArgs {
  q: Float32Array; // [B, P, H, dh]
  k: Float32Array; // [B, P, Hkv, dh]
  v: Float32Array; // [B, P, Hkv, dh]
  pattern: Float32Array; // [B, H, P, P]
  gZ: Float32Array; // [B, P, H, dh]
  B: number;
  P: number;
  H: number;
  /** Key/value heads (default H). */
  Hkv?: number;
  dh: number;
  /** Default plainScores(dh). A soft-capped transform needs `scores`. */
  transform?: ScoreTransform;
  /** [B, H, P, P]: the scores after the transform (read only for a soft-cap's derivative). */
  scores?: Float32Array;
  frozenPattern?: boolean;
}

export function attentionBackward(a: AttentionBackwardArgs): AttentionGrads {
  const { q, k, v, pattern, gZ, B, P, H, dh } = a;
  const Hkv = a.Hkv ?? H;
  const transform = a.transform ?? plainScores(dh);
  const scores = a.scores ?? null;
  if (transform.softCap !== null && !scores)
    throw new Error("attentionBackward: a soft-capped score transform needs the scores");
  const group = H / Hkv;
  const HD = H * dh;
  const KD = Hkv * dh;
  const gPattern = new Float32Array(B * H * P * P);
  const gScores = new Float32Array(B * H * P * P);
  const gQ = new Float32Array(B * P * HD);
  const gK = new Float32Array(B * P * KD);
  const gV = new Float32Array(B * P * KD);
  const gRow = new Float64Array(P);
  const gsRow = new Float64Array(P);
  for (let b = 0; b < B; b++)
    for (let h = 0; h < H; h++) {
      const kvh = Math.floor(h / group);
      for (let i = 0; i < P; i++) {
        const zo = (b * P + i) * HD + h * dh;
        const po = ((b * H + h) * P + i) * P;
        // d/d pattern[i, j] = gz_i · v_j (defined for masked j too: the hook's own gradient), and
        // d/d v_j += pattern[i, j] gz_i
        let dot = 0; // Σ_j p_ij g_ij, for the softmax backward
        for (let j = 0; j < P; j++) {
          const vo = (b * P + j) * KD + kvh * dh;
          let s = 0;
          for (let e = 0; e < dh; e++) s += gZ[zo + e] * v[vo + e];
          gPattern[po + j] = s;
          gRow[j] = s;
          const p = pattern[po + j];
          dot += p * s;
          if (p !== 0) for (let e = 0; e < dh; e++) gV[vo + e] += p * gZ[zo + e];
        }
        if (a.frozenPattern) continue;
        // Causal: keys after query i have p = 0, so the softmax gives them no gradient.
        softmaxBackwardRow({ pattern, offset: po, gPattern: gRow, dot, count: i + 1, into: gsRow });
        for (let j = 0; j <= i; j++) {
          const gs = gsRow[j];
          gScores[po + j] = gs;
          if (gs === 0) continue;
          const ko = (b * P + j) * KD + kvh * dh;
          const c = gs * (scores ? scoreTransformDerivative(transform, scores[po + j]) : transform.scale);
          for (let e = 0; e < dh; e++) {
            gQ[zo + e] += c * k[ko + e];
            gK[ko + e] += c * q[zo + e];
          }
        }
      }
    }
  return { gPattern, gScores, gQ, gK, gV };
}

/**
 * d/d v of attention with the pattern frozen, for B gradient rows sharing one pattern (the linearised pass
 * of attribution graphs: every row is one target's backward through the same prompt): per head
 * gV[j] = Σ_i pattern[i, j] gZ[i], summed over the query heads sharing each key/value head. The same
 * numbers as `attentionBackward({ frozenPattern: true }).gV` with the pattern repeated per row, as one
 * batched product (the kernels' bmm) instead of a loop over heads and positions.
 * pattern: [H, P, P] (one prompt); gZ: [B, P, H, dh]; returns [B, P, Hkv, dh].
 */
export function frozenValueBackward(
  kernels: Kernels,
  a: { pattern: Float32Array; gZ: Float32Array; B: number; P: number; H: number; Hkv: number; dh: number },
): Float32Array {
  const { pattern, gZ, B, P, H, Hkv, dh } = a;
  const HPP = H * P * P;
  const pT = new Float32Array(B * HPP); // [B, H, P(keys), P(queries)]
  for (let h = 0; h < H; h++)
    for (let i = 0; i < P; i++)
      for (let j = 0; j < P; j++) pT[(h * P + j) * P + i] = pattern[(h * P + i) * P + j];
  for (let b = 1; b < B; b++) pT.copyWithin(b * HPP, 0, HPP);
  const perHead = positionsFirst(
    kernels.bmm(pT, headsFirst(gZ, B, P, H, dh), B * H, P, P, dh, false),
    B,
    P,
    H,
    dh,
  );
  if (Hkv === H) return perHead;
  const group = H / Hkv;
  const gV = new Float32Array(B * P * Hkv * dh);
  for (let r = 0; r < B * P; r++)
    for (let h = 0; h < H; h++) {
      const src = (r * H + h) * dh;
      const dst = (r * Hkv + Math.floor(h / group)) * dh;
      for (let e = 0; e < dh; e++) gV[dst + e] += perHead[src + e];
    }
  return gV;
}
