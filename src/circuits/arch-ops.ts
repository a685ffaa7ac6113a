/**
 * The pieces of one architecture the edge-masked forward needs, read from the model's architecture
 * description and weights: the input node, the normalisations (each with its backward), every head's
 * q/k/v projection stacked so that each head input is projected by its own weights (key/value weights
 * repeated per query head: grouped heads are ungrouped for edges, as EAP-IG does), rotary positions, the
 * MLP (plain or gated), the norms after attention and the MLP (Gemma 2: each head's write is its share of
 * ln1_post, normalised by the layer's scale) and the readout of a logit difference (with any final
 * soft-cap). Everything else in
 * src/circuits is architecture-free. The kernels lend it the attention weights (docs/circuits.md, Memory).
 */

import { type ScoreTransform, scoreTransformOf } from "../model/attention.ts";
import {
  blockOps,
  embedResidual,
  lendAttentionWeights,
  reclaimAttentionWeights,
  rotaryOf,
} from "../model/block-ops.ts";
import type { HookedTransformer } from "../model/hooked-transformer.ts";
import { fuseHeads } from "../model/layouts.ts";
import { type MlpSaved, mlpBackward, mlpForward } from "../model/mlp.ts";
import { normalize, normalizeShares, normalizeSharesBackward, normBackward } from "../model/normalization.ts";
import { logitReadout, readoutDirection } from "../model/readout.ts";
import type { Kernels } from "../tensor/kernels.ts";
import { collectGarbage } from "../util/collect-garbage.ts";
import type { LayerNormParams } from "../weights/canonical-weights.ts";
import { layerWindow } from "../weights/config.ts";

/**
 * Which normalisation: before layer L's attention or its MLP, after them (Gemma 2's ln1_post / ln2_post),
 * or before the unembedding.
 */
export type NormSite =
  | { layer: number; which: "ln1" | "ln2" | "ln1Post" | "ln2Post" }
  | { layer: null; which: "final" };

/**
 * One term of a prompt's metric: sign · (y · dir + bias), soft-capped when `softCap` is set (readout.ts'
 * readoutValue). A logit difference is one term (the difference of two columns) without a final soft-cap,
 * and two capped logits, answer minus wrong, with one (as patching's metric reads them).
 */
export interface MetricTerm {
  /** [D] */
  dir: Float32Array;
  bias: number;
  softCap: number | null;
  sign: 1 | -1;
}

/** With QK-norm, what its backward needs: q and k of every head input before it [2H, B·P, dh], and their scales. */
export interface QKNormSaved {
  raw: Float32Array;
  scale: Float32Array;
}

/** With post-norms, what ln2_post's backward needs: the MLP's output before it and its scale (else null). */
export interface MlpPostSaved {
  raw: Float32Array | null;
  postScale: Float32Array | null;
}

export interface HeadWeights {
  /** [3H, D, dh]: W_Q of each head, then W_K, then W_V (key/value weights repeated per query head). */
  W: Float32Array;
  /** [3H, dh] */
  b: Float32Array;
  /** [H, dh, D] */
  W_O: Float32Array;
  /** [D]: added to the residual once per layer; not part of any head's node output. */
  b_O: Float32Array;
}

/**
 * While weights change hands layer by layer, a full collection after about this many bytes were let go,
 * so the freed copies return to the system as they go rather than all at the end (the transient).
 */
const COLLECT_BYTES = 256 * 2 ** 20;

/** A counter of bytes let go that runs a full collection each time `every` more have been. */
function collectEvery(every: number): (bytes: number) => void {
  let since = 0;
  return (bytes) => {
    since += bytes;
    if (since < every) return;
    collectGarbage();
    since = 0;
  };
}

export class ArchOps {
  readonly kernels: Kernels;
  readonly D: number;
  readonly H: number;
  readonly dh: number;
  /** Each layer's head weights; null once given back (`giveBack`). */
  private readonly heads: (HeadWeights | null)[];

  constructor(readonly model: HookedTransformer) {
    const { cfg, weights } = model;
    this.kernels = model.kernels;
    this.D = cfg.dModel;
    this.H = cfg.nHeads;
    this.dh = cfg.dHead;
    const { H, D, dh } = this;
    const Hkv = cfg.nKvHeads;
    const group = H / Hkv;
    const collect = collectEvery(COLLECT_BYTES); // the kernels' copies dropped so far
    this.heads = weights.blocks.map((b, l) => {
      const W = new Float32Array(3 * H * D * dh);
      const bias = new Float32Array(3 * H * dh);
      for (const [which, [w, wb]] of [
        [b.W_Q, b.b_Q],
        [b.W_K, b.b_K],
        [b.W_V, b.b_V],
      ].entries()) {
        for (let h = 0; h < H; h++) {
          const src = which === 0 ? h : Math.floor(h / group); // a query head's key/value head
          W.set(w.data.subarray(src * D * dh, (src + 1) * D * dh), (which * H + h) * D * dh);
          bias.set(wb.data.subarray(src * dh, (src + 1) * dh), (which * H + h) * dh);
        }
      }
      const W_O = b.W_O.data;
      // These are the block's attention weights, in this layout: the kernels' own copies can go (they
      // are rebuilt from these, exactly, when the model next runs), so the model is not held twice.
      lendAttentionWeights(model, l, {
        // Q of every head; K and V of each key/value head (held by the first query head of its group).
        qkv: () => {
          const heads = (which: number, count: number, step: number) => {
            const out = new Float32Array(count * D * dh);
            for (let j = 0; j < count; j++) {
              const from = (which * H + j * step) * D * dh;
              out.set(W.subarray(from, from + D * dh), j * D * dh);
            }
            return out;
          };
          return fuseHeads(
            [heads(0, H, 1), heads(1, Hkv, group), heads(2, Hkv, group)],
            [H, Hkv, Hkv],
            D,
            dh,
          );
        },
        o: () => W_O,
      });
      collect(W.byteLength + W_O.byteLength);
      return { W, b: bias, W_O, b_O: b.b_O.data };
    });
    collectGarbage();
  }

  /** How q·k becomes a score: the forward's own transform (scale, and any attention soft-cap). */
  get scoreTransform(): ScoreTransform {
    return scoreTransformOf(this.model.cfg);
  }

  /** Layer `layer`'s attention window in positions, or null for full causal attention. */
  window(layer: number): number | null {
    return layerWindow(this.model.cfg, layer);
  }

  get nLayers(): number {
    return this.heads.length;
  }

  headWeights(layer: number): HeadWeights {
    const w = this.heads[layer];
    if (!w) throw new Error(`Layer ${layer}'s head weights were given back to the kernels (giveBack)`);
    return w;
  }

  /**
   * Gives the attention weights back to the kernels now, layer by layer, letting each layer's own copy
   * go, so the model is never held twice: left to the model's next run, every layer would be rebuilt
   * while these copies wait for a collection (GPT-2 XL: +2.3 GiB during that run, and 3.4 s spent in it).
   */
  giveBack(): void {
    const collect = collectEvery(COLLECT_BYTES);
    for (const [l, w] of this.heads.entries()) {
      if (!w) continue;
      reclaimAttentionWeights(this.model, l);
      this.heads[l] = null;
      collect(w.W.byteLength + w.W_O.byteLength);
    }
    collectGarbage();
  }

  /** The `input` node's output: the residual entering block 0 (embeddings, with positions where learned). */
  inputNode(tokens: Int32Array, B: number, P: number): Float32Array {
    return embedResidual(this.model, tokens, B, P);
  }

  private normParams(site: NormSite): LayerNormParams | null {
    const w = this.model.weights;
    return site.which === "final" ? w.lnFinal : (w.blocks[site.layer][site.which] ?? null);
  }

  /** Whether the model normalises attention and MLP outputs before they join the residual (Gemma 2). */
  get postNorms(): boolean {
    return this.model.cfg.postNorms === true;
  }

  /**
   * What layer `layer`'s attention adds to the residual outside any head: b_O, or with post-norms the
   * bias of ln1_post (b_O is then split evenly among the heads' writes, as it is normalised with them).
   */
  residualBias(layer: number): Float32Array {
    if (!this.postNorms) return this.headWeights(layer).b_O;
    return this.model.weights.blocks[layer].ln1Post?.b.data ?? new Float32Array(this.D);
  }

  /**
   * Each head's write to the residual, from its result z_h W_O [H, rows·D]: the result itself, or with
   * post-norms its share of ln1_post of the layer's summed output (normalizeShares: w ⊙ centre(result_h +
   * b_O / H) / scale(Σ_h result_h + b_O), the scale of this run), so the writes sum to ln1_post's output
   * less its bias. Without post-norms `results` is returned, `pieces` and `scale` are null.
   */
  headWrites(
    layer: number,
    results: Float32Array,
    rows: number,
  ): { writes: Float32Array; pieces: Float32Array | null; scale: Float32Array | null } {
    if (!this.postNorms) return { writes: results, pieces: null, scale: null };
    const { H, D } = this;
    const bO = this.headWeights(layer).b_O;
    const pieces = results;
    for (let h = 0; h < H; h++)
      for (let r = 0; r < rows; r++) {
        const o = (h * rows + r) * D;
        for (let d = 0; d < D; d++) pieces[o + d] += bO[d] / H;
      }
    const { normalization: kind, lnEps: eps } = this.model.cfg;
    const ln = this.normParams({ layer, which: "ln1Post" });
    const { shares, scale } = normalizeShares({ kind, pieces, n: H, rows, D, eps, ln });
    return { writes: shares, pieces, scale };
  }

  /** d/d each head's result [H, rows·D] from d/d its write (headWrites' backward). */
  headWritesBackward(
    layer: number,
    saved: { pieces: Float32Array | null; scale: Float32Array | null },
    gWrites: Float32Array,
    rows: number,
  ): Float32Array {
    if (!saved.pieces || !saved.scale) return gWrites;
    const ln = this.normParams({ layer, which: "ln1Post" });
    return normalizeSharesBackward({
      kind: this.model.cfg.normalization,
      pieces: saved.pieces,
      n: this.H,
      rows,
      D: this.D,
      scale: saved.scale,
      ln,
      gShares: gWrites,
    });
  }

  /** Normalise each row of x [rows, D]. */
  norm(site: NormSite, x: Float32Array, rows: number): { y: Float32Array; scale: Float32Array } {
    const { normalization: kind, lnEps: eps } = this.model.cfg;
    return normalize({ kind, x, rows, D: this.D, eps, ln: this.normParams(site) });
  }

  normBackward(
    site: NormSite,
    x: Float32Array,
    scale: Float32Array,
    gY: Float32Array,
    rows: number,
  ): Float32Array {
    const kind = this.model.cfg.normalization;
    return normBackward({ kind, x, scale, ln: this.normParams(site), gNormalized: gY, rows, D: this.D })
      .gInput;
  }

  /**
   * Where q and k of every head input ([2H, B·P, dh]: each head's q, then its k) become what the scores
   * read, in place: QK-norm (Gemma 3: each head's q and k normalised over d_head with the layer's q_norm /
   * k_norm gain), then the layer's rotary positions. Returns what the backward needs: q and k before the
   * norm and its scales (null without QK-norm).
   */
  positionQK(layer: number, qk: Float32Array, B: number, P: number): QKNormSaved | null {
    let saved: QKNormSaved | null = null;
    const w = this.model.weights.blocks[layer];
    if (w.qNorm && w.kNorm) {
      const half = qk.length / 2;
      const raw = qk.slice();
      const scale = new Float32Array(qk.length / this.dh);
      for (const [i, ln] of [w.qNorm, w.kNorm].entries()) {
        const part = qk.subarray(i * half, (i + 1) * half);
        const n = this.qkNorm(ln, part);
        part.set(n.y);
        scale.set(n.scale, (i * half) / this.dh);
      }
      saved = { raw, scale };
    }
    this.rotate(layer, qk, B, P, false);
    return saved;
  }

  /** positionQK's backward: d/d q and k as projected, from d/d what the scores read, in place. */
  positionQKBackward(
    layer: number,
    saved: QKNormSaved | null,
    gQk: Float32Array,
    B: number,
    P: number,
  ): void {
    this.rotate(layer, gQk, B, P, true);
    const w = this.model.weights.blocks[layer];
    if (!saved || !w.qNorm || !w.kNorm) return;
    const half = gQk.length / 2;
    const rowsHalf = half / this.dh;
    for (const [i, ln] of [w.qNorm, w.kNorm].entries()) {
      const back = normBackward({
        kind: this.model.cfg.normalization,
        x: saved.raw.subarray(i * half, (i + 1) * half),
        scale: saved.scale.subarray(i * rowsHalf, (i + 1) * rowsHalf),
        ln,
        gNormalized: gQk.subarray(i * half, (i + 1) * half),
        rows: rowsHalf,
        D: this.dh,
      });
      gQk.set(back.gInput, i * half);
    }
  }

  /** RMS-normalise rows of d_head values with a QK-norm gain. */
  private qkNorm(ln: LayerNormParams, x: Float32Array): { y: Float32Array; scale: Float32Array } {
    const { normalization: kind, lnEps: eps } = this.model.cfg;
    return normalize({ kind, x, rows: x.length / this.dh, D: this.dh, eps, ln });
  }

  /** Rotate q and k of every head input ([2H, B, P, dh]) by layer `layer`'s rotary positions, or back. */
  private rotate(layer: number, qk: Float32Array, B: number, P: number, inverse: boolean): void {
    const rotary = rotaryOf(this.model, layer);
    if (!rotary) return;
    const n = B * P * this.dh;
    for (let o = 0; o < qk.length; o += n)
      qk.set(
        rotary.rotate(qk.subarray(o, o + n), {
          batch: B,
          pos: P,
          heads: 1,
          dHead: this.dh,
          firstPos: 0,
          inverse,
        }),
        o,
      );
  }

  /**
   * The MLP's node output (with its output bias) for normalised rows x [rows, D]; with post-norms, ln2_post
   * of it (the whole output: one node, exact).
   */
  mlp(layer: number, x: Float32Array, rows: number): { out: Float32Array; saved: MlpSaved & MlpPostSaved } {
    const ops = blockOps(this.model, layer);
    const m = mlpForward({ ops, kernels: this.kernels, act: this.model.cfg.act, x, rows });
    if (!this.postNorms) return { out: m.out, saved: { ...m.saved, raw: null, postScale: null } };
    const post = this.norm({ layer, which: "ln2Post" }, m.out, rows);
    return { out: post.y, saved: { ...m.saved, raw: m.out, postScale: post.scale } };
  }

  mlpBackward(layer: number, saved: MlpSaved & MlpPostSaved, gOut: Float32Array, rows: number): Float32Array {
    const ops = blockOps(this.model, layer);
    const gRaw =
      saved.raw && saved.postScale
        ? this.normBackward({ layer, which: "ln2Post" }, saved.raw, saved.postScale, gOut, rows)
        : gOut;
    const gPost = ops.mlpOut.backward(gRaw, rows);
    return mlpBackward({ ops, kernels: this.kernels, act: this.model.cfg.act, saved, gPost, rows }).gInput;
  }

  /**
   * logit(answer) − logit(wrong) of final normalised residual y as metric terms (dirs in float32): one
   * direction (the difference of two columns) without a final soft-cap; with one, each capped logit on its
   * own, as patching's metric reads them (readout.ts' logitReadout).
   */
  logitDiffTerms(answer: number, wrong: number): MetricTerm[] {
    if (this.model.cfg.finalSoftCap == null) {
      const r = readoutDirection(this.model.weights, answer, wrong);
      return [{ dir: Float32Array.from(r.dir), bias: r.bias, softCap: null, sign: 1 }];
    }
    return ([answer, wrong] as const).map((token, i) => {
      const r = logitReadout(this.model, token);
      return {
        dir: Float32Array.from(r.dir),
        bias: r.bias,
        softCap: r.softCap ?? null,
        sign: i === 0 ? 1 : -1,
      };
    });
  }
}
