import type { Kernels, LinearOp } from "../tensor/kernels.ts";
import { Tensor } from "../tensor/tensor.ts";
import { collectGarbage } from "../util/collect-garbage.ts";
import type { BlockWeights, LayerNormParams, ModelWeights } from "../weights/canonical-weights.ts";
import { layerRotary, layerWindow, type ModelConfig, type RotaryConfig } from "../weights/config.ts";
import type { HeadWeights } from "../weights/families/index.ts";
import {
  attentionScores,
  type CausalMask,
  headResults,
  mixValues,
  type ScoreTransform,
  scoreTransformOf,
  softmaxRows,
  sumHeads,
} from "./attention.ts";
import type { EmbeddingTable } from "./embedding-table.ts";
import type { HookDispatcher } from "./hooks.ts";
import { addArrays as add, concat, fuseHeads, lastRows, splitColumns } from "./layouts.ts";
import { type MlpOps, mlpForward } from "./mlp.ts";
import { normalize } from "./normalization.ts";
import { softCapLogits } from "./readout.ts";
import { Rotary } from "./rotary.ts";
import { handBlockToOps, RecentWeights, viewWeights } from "./weight-views.ts";

/**
 * Keys/values of earlier positions for one layer: k, v are [batchOrOne, len, n_kv_heads, d_head], keys
 * already rotated for rotary models. `shared` means one copy serves every batch element (e.g. the
 * corrupted prompt's prefix under many patches).
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

/** A block's projections as kernel ops: attention's and the MLP's. */
export interface BlockOps extends MlpOps {
  qkv: LinearOp; // [D] → [(H + 2 * Hkv) * dh], columns Q | K | V, head-major within each
  o: LinearOp; // [H * dh] → [D], with b_O
}

/** One block's inputs. */
interface BlockArgs {
  layer: number;
  resid: Tensor; // [batch, pos, d_model]
  batch: number;
  pos: number;
  pastLen: number;
  past: PastKV | null;
  hooks: HookDispatcher;
  present: PastKV[] | null;
  /** Compute the query side, attention output and MLP at the final position only. */
  queryLast: boolean;
}

/**
 * What an engine is built from: every part but the blocks, and the blocks one at a time (a loader makes
 * each block only when the engine asks for it).
 */
export interface WeightParts {
  embedding: EmbeddingTable;
  W_pos: Tensor | null;
  /** Called once; the parts keep no reference to what it returns (so W_U can go once the kernels hold it). */
  takeHead: () => HeadWeights;
  blocks: Iterable<BlockWeights>;
}

/**
 * Hands the head to the kernels. A function of its own so that no frame keeps the JavaScript W_U alive once
 * the op holds it.
 */
function buildUnembed(
  head: HeadWeights,
  { cfg, kernels }: { cfg: ModelConfig; kernels: Kernels },
): { op: LinearOp; lnFinal: LayerNormParams | null; b_U: Tensor; logitBound: LogitBound } {
  const logitBound = boundLogits(head.W_U.data, head.b_U.data, cfg.dVocab);
  const op = kernels.linear(head.W_U.data, cfg.dModel, cfg.dVocab, head.b_U.data);
  return { op, lnFinal: head.lnFinal, b_U: head.b_U, logitBound };
}

/**
 * |logit_v| ≤ max|x| · Σ_d |W_U[d, v]| + |b_U[v]| for the unembedding's input x, so a forward whose input
 * is small enough cannot overflow there, and the logits need no element-by-element check (which costs as
 * much as a tenth of a short forward at GPT-2's vocabulary).
 */
interface LogitBound {
  /** max over v of Σ_d |W_U[d, v]|. */
  columnL1: number;
  /** max over v of |b_U[v]|. */
  bias: number;
}

function boundLogits(W_U: Float32Array, b_U: Float32Array, V: number): LogitBound {
  const col = new Float64Array(V);
  for (let o = 0; o < W_U.length; o += V) for (let v = 0; v < V; v++) col[v] += Math.abs(W_U[o + v]);
  let columnL1 = 0;
  for (let v = 0; v < V; v++) columnL1 = Math.max(columnL1, col[v]);
  let bias = 0;
  for (let v = 0; v < V; v++) bias = Math.max(bias, Math.abs(b_U[v]));
  return { columnL1, bias };
}

/** Whether every logit of an unembedding input x is provably finite (else they are checked one by one). */
function logitsSurelyFinite(x: Float32Array, bound: LogitBound): boolean {
  let max = 0;
  for (let i = 0; i < x.length; i++) {
    const a = Math.abs(x[i]);
    if (!(a <= max)) {
      if (!Number.isFinite(a)) return false;
      max = a;
    }
  }
  // Far below float32's 3.4e38, so the products' rounding cannot matter.
  return max * bound.columnL1 + bound.bias < 1e37;
}

/** The transformer forward pass with hook points, over prepared kernel ops, for any supported architecture. */
export class ForwardEngine {
  private readonly ops: BlockOps[] = [];
  private readonly unembed: LinearOp;
  private readonly logitBound: LogitBound;
  private readonly embedding: EmbeddingTable;
  /** The model's weights; matrices the kernels hold are read-only views (src/model/weight-views.ts). */
  readonly weights: ModelWeights;
  /** Each layer's rotary positions (null for learned positions); layers of one kind share one. */
  private readonly rotaries: (Rotary | null)[];
  private readonly scores: ScoreTransform;

  constructor(
    readonly cfg: ModelConfig,
    parts: WeightParts,
    readonly kernels: Kernels,
  ) {
    const { dModel: D, nHeads: H, nKvHeads: Hkv, dHead: dh, dMlp } = cfg;
    this.embedding = parts.embedding;
    // The unembedding first, while nothing else is held; then block by block, the backend takes each
    // matrix and the JavaScript copy is dropped right after, so the load never holds the model twice.
    collectGarbage(); // what the loader no longer needs (a checkpoint's W_E) goes before the backend copies W_U
    const { op, lnFinal, b_U, logitBound } = buildUnembed(parts.takeHead(), { cfg, kernels });
    this.unembed = op;
    this.logitBound = logitBound;
    const weights = viewWeights({
      W_pos: parts.W_pos,
      lnFinal,
      b_U,
      embedding: parts.embedding,
      unembed: op,
      cfg,
    });
    collectGarbage();
    const recent = new RecentWeights();
    for (const b of parts.blocks) {
      const ops: BlockOps = {
        qkv: kernels.linear(
          fuseHeads([b.W_Q.data, b.W_K.data, b.W_V.data], [H, Hkv, Hkv], D, dh),
          D,
          (H + 2 * Hkv) * dh,
          concat([b.b_Q.data, b.b_K.data, b.b_V.data]),
        ),
        o: kernels.linear(b.W_O.data, H * dh, D, b.b_O.data),
        mlpIn: kernels.linear(b.W_in.data, D, dMlp, b.b_in.data),
        mlpGate: b.W_gate ? kernels.linear(b.W_gate.data, D, dMlp, null) : null,
        mlpOut: kernels.linear(b.W_out.data, dMlp, D, b.b_out.data),
      };
      handBlockToOps(b, { cfg, op: ops, recent });
      this.ops.push(ops);
      weights.blocks.push(b);
      collectGarbage();
    }
    if (weights.blocks.length !== cfg.nLayers) {
      throw new Error(`The model has ${weights.blocks.length} blocks, but its config says ${cfg.nLayers}`);
    }
    this.weights = weights;
    const rotaryOf = new Map<RotaryConfig, Rotary>();
    this.rotaries = Array.from({ length: cfg.nLayers }, (_, l) => {
      const rc = layerRotary(cfg, l);
      if (!rc) return null;
      if (!rotaryOf.has(rc)) rotaryOf.set(rc, new Rotary(rc));
      return rotaryOf.get(rc) ?? null;
    });
    this.scores = scoreTransformOf(cfg);
  }

  /** The kernel op of a block's projection, for the backward pass. */
  blockOps(layer: number): Readonly<BlockOps> {
    return this.ops[layer];
  }
  /** The rotary positions layer `layer` rotates q and k by, or null for learned positions. */
  rotary(layer: number): Rotary | null {
    return this.rotaries[layer];
  }
  unembedOp(): LinearOp {
    return this.unembed;
  }

  dispose(): void {
    for (const o of this.ops) for (const op of Object.values(o)) op?.dispose();
    this.unembed.dispose();
    this.embedding.close();
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
      resid = this.block({
        layer: l,
        resid,
        batch: B,
        pos: P,
        pastLen,
        past: a.past?.[l] ?? null,
        hooks: h,
        present,
        queryLast: finalOnly && l === stop - 1,
      });
    }
    if (stop < cfg.nLayers) return { logits: null, residual: resid, presentKV: present };
    // With finalPositionOnly the residual holds only the final position ([B, 1, D]).
    const outP = resid.shape[1];
    const rows = B * outP;
    const normalized = this.norm("ln_final", resid.data, [B, outP, D], this.weights.lnFinal, h);
    let logits: Tensor | null = null;
    let input: Float32Array | null = null;
    if (a.logits === "all") {
      input = normalized.data;
      logits = new Tensor(this.unembed.forward(normalized.data, rows), [B, outP, cfg.dVocab]);
    } else if (a.logits === "last") {
      const last = new Float32Array(B * D);
      for (let b = 0; b < B; b++) {
        const p = outP === P ? (a.lengths?.[b] ?? P) - 1 : outP - 1;
        last.set(normalized.data.subarray((b * outP + p) * D, (b * outP + p + 1) * D), b * D);
      }
      input = last;
      logits = new Tensor(this.unembed.forward(last, B), [B, 1, cfg.dVocab]);
    }
    if (logits) {
      // Checked before the cap, which would turn an overflow into a finite ±cap.
      if (input && !logitsSurelyFinite(input, this.logitBound)) checkFiniteLogits(logits);
      softCapLogits(logits.data, cfg.finalSoftCap ?? null);
    }
    return { logits, residual: resid, presentKV: present };
  }

  /**
   * LayerNorm or RMSNorm (or their folded Pre forms) of x [...rows, width] (`shape`) over its last axis, with
   * its two hook points; the scale hook's value is the one used. QK-norm is this over each head's d_head.
   */
  private norm(
    prefix: string,
    x: Float32Array,
    shape: readonly number[],
    ln: LayerNormParams | null,
    h: HookDispatcher,
  ): Tensor {
    const { normalization: kind, lnEps: eps } = this.cfg;
    const D = shape[shape.length - 1];
    const rows = x.length / D;
    const scaleShape = [...shape.slice(0, -1), 1];
    const fireScale = (scale: Float32Array) =>
      h.fire(`${prefix}.hook_scale`, new Tensor(scale, scaleShape)).data;
    const { y } = normalize({ kind, x, rows, D, eps, ln, fireScale });
    return h.fire(`${prefix}.hook_normalized`, new Tensor(y, [...shape]));
  }

  private embed(tokens: Int32Array, B: number, P: number, pastLen: number, h: HookDispatcher): Tensor {
    const { dModel: D, dVocab } = this.cfg;
    const ids = tokens.subarray(0, B * P);
    for (const t of ids) {
      if (t < 0 || t >= dVocab) throw new Error(`Bad token id ${t}: token ids must be in [0, ${dVocab})`);
    }
    const e = new Float32Array(B * P * D);
    this.embedding.gather(ids, e);
    // Gemma: W_E as stored, scaled here (hook_embed is the scaled embedding, TransformerLens' W_E row).
    const embedScale = this.cfg.embedScale ?? null;
    if (embedScale !== null) for (let i = 0; i < e.length; i++) e[i] *= embedScale;
    const embed = h.fire("hook_embed", new Tensor(e, [B, P, D]));
    const WP = this.weights.W_pos?.data;
    if (!WP) return embed; // rotary models add positions inside attention
    const pe = new Float32Array(B * P * D);
    for (let r = 0; r < B * P; r++) {
      const p = pastLen + (r % P);
      pe.set(WP.subarray(p * D, (p + 1) * D), r * D);
    }
    const posEmbed = h.fire("hook_pos_embed", new Tensor(pe, [B, P, D]));
    return new Tensor(add(embed.data, posEmbed.data), [B, P, D]);
  }

  /**
   * One block as two residual lines (nanoGPT's Block.forward): x += attn(ln1(x)); x += mlp(ln2(x)).
   * The passes outside (backward, edge-masked) run the same pieces (attention.ts, mlp.ts,
   * normalization.ts). With `parallelResidual` (GPT-NeoX) ln2 reads resid_pre, not resid_mid:
   * resid_post = resid_pre + attn_out + mlp_out. hook_resid_mid (which TransformerLens does not fire for
   * parallel blocks) is still resid_pre + attn_out, so resid_post = resid_mid + mlp_out either way.
   * With `postNorms` (Gemma 2) each output is normalised once more (ln1_post, ln2_post) before it joins
   * the residual: hook_attn_out and hook_mlp_out are what is added, as in TransformerLens.
   */
  private block(a: BlockArgs): Tensor {
    const { batch: B, pos: P, hooks: h, layer: l } = a;
    const { dModel: D } = this.cfg;
    const w = this.weights.blocks[l];
    const name = (s: string) => `blocks.${l}.${s}`;
    // Only query positions leave the block: all new ones, or just the final one (queryLast).
    const Q = a.queryLast ? 1 : P;

    const residPre = h.fire(name("hook_resid_pre"), a.resid);
    let attnOut = this.attention(a, this.norm(name("ln1"), residPre.data, [B, P, D], w.ln1, h));
    if (w.ln1Post) attnOut = this.norm(name("ln1_post"), attnOut.data, [B, Q, D], w.ln1Post, h);
    attnOut = h.fire(name("hook_attn_out"), attnOut);
    const residRows = a.queryLast ? lastRows(residPre.data, B, P, D) : residPre.data;
    const residMid = h.fire(name("hook_resid_mid"), new Tensor(add(residRows, attnOut.data), [B, Q, D]));

    const mlpIn = this.cfg.parallelResidual ? residRows : residMid.data;
    let mlpOut = this.mlp(a, this.norm(name("ln2"), mlpIn, [B, Q, D], w.ln2, h));
    if (w.ln2Post) mlpOut = this.norm(name("ln2_post"), mlpOut.data, [B, Q, D], w.ln2Post, h);
    mlpOut = h.fire(name("hook_mlp_out"), mlpOut);
    return h.fire(name("hook_resid_post"), new Tensor(add(residMid.data, mlpOut.data), [B, Q, D]));
  }

  /** Attention of normalised x [B, P, D] → its output [B, Q, D] (Q = 1 with queryLast), b_O included. */
  private attention(a: BlockArgs, x: Tensor): Tensor {
    const { batch: B, pos: P, pastLen, past, hooks: h, layer: l } = a;
    const { dModel: D, nHeads: H, nKvHeads: Hkv, dHead: dh } = this.cfg;
    const w = this.weights.blocks[l];
    const ops = this.ops[l];
    const name = (s: string) => `blocks.${l}.${s}`;
    const HD = H * dh;
    const KD = Hkv * dh;

    const qkv = ops.qkv.forward(x.data, B * P);
    const [qRaw, kRaw, vRaw] = splitColumns(qkv, B * P, [HD, KD, KD]);
    let q = h.fire(name("attn.hook_q"), new Tensor(qRaw, [B, P, H, dh]));
    let k = h.fire(name("attn.hook_k"), new Tensor(kRaw, [B, P, Hkv, dh]));
    const v = h.fire(name("attn.hook_v"), new Tensor(vRaw, [B, P, Hkv, dh]));
    // QK-norm (Gemma 3): each head's q and k normalised over d_head, before the rotation.
    if (w.qNorm) q = this.norm(name("attn.q_norm"), q.data, q.shape, w.qNorm, h);
    if (w.kNorm) k = this.norm(name("attn.k_norm"), k.data, k.shape, w.kNorm, h);
    const rotary = this.rotaries[l];
    if (rotary) {
      q = h.fire(
        name("attn.hook_rot_q"),
        new Tensor(
          rotary.rotate(q.data, { batch: B, pos: P, heads: H, dHead: dh, firstPos: pastLen }),
          q.shape,
        ),
      );
      k = h.fire(
        name("attn.hook_rot_k"),
        new Tensor(
          rotary.rotate(k.data, { batch: B, pos: P, heads: Hkv, dHead: dh, firstPos: pastLen }),
          k.shape,
        ),
      );
    }

    const T = pastLen + P;
    if (pastLen > 0 && !past)
      throw new Error(`Layer ${l}: ${pastLen} earlier positions but no cached keys/values`);
    if (past && past.len !== pastLen)
      throw new Error(`Layer ${l}: cached keys cover ${past.len} positions, expected ${pastLen}`);
    // Keys/values of every position [B, T, Hkv, dh]: the fresh ones, or past ∪ fresh when continuing.
    const kv = past
      ? concatKV(past, k.data, v.data, B, P, KD)
      : { k: k.data, v: v.data, len: T, shared: false };
    if (a.present) a.present.push(kv);

    // From here on only query positions matter: all new ones, or just the final one (queryLast).
    const Q = a.queryLast ? 1 : P;
    const rows = B * Q;
    const qRows = a.queryLast ? lastRows(q.data, B, P, HD) : q.data;
    const shape = { batch: B, queries: Q, keys: T, nHeads: H, nKvHeads: Hkv, dHead: dh };
    const mask: CausalMask = { queries: Q, firstQuery: pastLen + P - Q, window: layerWindow(this.cfg, l) };
    const scores = attentionScores(this.kernels, qRows, kv.k, { ...shape, ...mask, transform: this.scores });
    // Unless a hook or the cache sees the scores, the masked ones are still -inf: softmax can skip them.
    const scoresName = name("attn.hook_attn_scores");
    const unseen = !h.wants(scoresName);
    const scoresT = h.fire(scoresName, new Tensor(scores, [B, H, Q, T]));
    const pattern = h.fire(
      name("attn.hook_pattern"),
      new Tensor(softmaxRows(scoresT.data, { rows: B * H * Q, keys: T, mask: unseen ? mask : null }), [
        B,
        H,
        Q,
        T,
      ]),
    );
    const z = h.fire(
      name("attn.hook_z"),
      new Tensor(mixValues(this.kernels, pattern.data, kv.v, shape), [B, Q, H, dh]),
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
    return new Tensor(attnOut, [B, Q, D]);
  }

  /** The MLP of normalised x [B, Q, D] → its output [B, Q, D], with its hooks. */
  private mlp(a: BlockArgs, x: Tensor): Tensor {
    const { hooks: h, layer: l } = a;
    const [B, Q, D] = x.shape;
    const { dMlp } = this.cfg;
    const name = (s: string) => `blocks.${l}.${s}`;
    const mlp = mlpForward({
      ops: this.ops[l],
      kernels: this.kernels,
      act: this.cfg.act,
      x: x.data,
      rows: B * Q,
      fire: (hook, value) => h.fire(name(`mlp.hook_${hook}`), new Tensor(value, [B, Q, dMlp])).data,
    });
    return new Tensor(mlp.out, [B, Q, D]);
  }
}

/** Keys/values of all positions so far, per batch element: [B, pastLen + P, Hkv, dh]; HD = Hkv * dh. */
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

/**
 * Finite weights can still overflow float32 on the way (weights near 3e38): NaN logits would print as a
 * prediction with exit 0, so they are an error naming the cause instead.
 */
function checkFiniteLogits(logits: Tensor): void {
  const { data } = logits;
  for (let i = 0; i < data.length; i++) {
    if (!Number.isFinite(data[i])) {
      const [, P, V] = logits.shape;
      throw new Error(
        `The model's logits are not finite (${data[i]} at batch ${Math.floor(i / (P * V))}, position ${Math.floor(i / V) % P}, ` +
          `token ${i % V}): the forward pass overflowed float32, so the weights are damaged or far too large ` +
          "(e.g. near 3e38) — re-download or re-export the model",
      );
    }
  }
}
