/**
 * The pieces of one architecture the edge-masked forward needs, read from the model's architecture
 * description and weights: the input node, the normalisations (each with its backward), every head's
 * q/k/v projection stacked so that each head input is projected by its own weights (key/value weights
 * repeated per query head: grouped heads are ungrouped for edges, as EAP-IG does), rotary positions, the
 * MLP (plain or gated) and the unembedding direction of a logit difference. Everything else in
 * src/circuits is architecture-free. The kernels lend it the attention weights (docs/circuits.md, Memory).
 */

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
import { normalize, normBackward } from "../model/normalization.ts";
import { readoutDirection } from "../model/readout.ts";
import type { Rotary } from "../model/rotary.ts";
import type { Kernels } from "../tensor/kernels.ts";
import { collectGarbage } from "../util/collect-garbage.ts";
import type { LayerNormParams } from "../weights/canonical-weights.ts";
import { layerWindow, type ModelConfig } from "../weights/config.ts";

/**
 * Edges need every node's output to add into the residual, and the metric to be a linear readout of the
 * final norm's output. Norms after attention and the MLP (Gemma 2's ln1_post / ln2_post) normalise the
 * sum of a layer's heads, so no head has an output of its own there; soft-capped scores and logits are
 * not read by this pass either. Refused before any work, with what to use instead.
 */
function refuseNonAdditive(cfg: ModelConfig): void {
  const why = cfg.postNorms
    ? "normalises each attention and MLP output before it joins the residual (ln1_post, ln2_post), so heads and MLPs are not additive nodes"
    : cfg.attnSoftCap != null || cfg.finalSoftCap != null
      ? "soft-caps its attention scores or logits, which the edge-masked pass does not model"
      : null;
  if (why === null) return;
  throw new Error(
    `Edge circuits are not supported for ${cfg.modelType}: the model ${why} — use activation patching ` +
      "(patch) or attribution patching (patch --method attribution) for this model",
  );
}

/** Which normalisation: before layer L's attention, before its MLP, or before the unembedding. */
export type NormSite = { layer: number; which: "ln1" | "ln2" } | { layer: null; which: "final" };

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
  private readonly rotary: Rotary | null;

  constructor(readonly model: HookedTransformer) {
    const { cfg, weights } = model;
    this.kernels = model.kernels;
    this.D = cfg.dModel;
    this.H = cfg.nHeads;
    this.dh = cfg.dHead;
    this.rotary = rotaryOf(model);
    refuseNonAdditive(cfg);
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
    return site.which === "final" ? w.lnFinal : w.blocks[site.layer][site.which];
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
   * Rotary positions: rotate the q and k of every head input in place ([2H, B, P, dh]), or rotate back
   * (`inverse`, the backward of the rotation). Learned positions need nothing.
   */
  rotate(qk: Float32Array, B: number, P: number, inverse: boolean): void {
    if (!this.rotary) return;
    const n = B * P * this.dh;
    for (let o = 0; o < qk.length; o += n)
      qk.set(
        this.rotary.rotate(qk.subarray(o, o + n), {
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

  /** The MLP's node output (with its output bias) for normalised rows x [rows, D]. */
  mlp(layer: number, x: Float32Array, rows: number): { out: Float32Array; saved: MlpSaved } {
    const ops = blockOps(this.model, layer);
    return mlpForward({ ops, kernels: this.kernels, act: this.model.cfg.act, x, rows });
  }

  mlpBackward(layer: number, saved: MlpSaved, gOut: Float32Array, rows: number): Float32Array {
    const ops = blockOps(this.model, layer);
    const gPost = ops.mlpOut.backward(gOut, rows);
    return mlpBackward({ ops, kernels: this.kernels, act: this.model.cfg.act, saved, gPost, rows }).gInput;
  }

  /** logit(answer) − logit(wrong) = y · dir + bias for final normalised residual y (dir in float32). */
  logitDiffDirection(answer: number, wrong: number): { dir: Float32Array; bias: number } {
    const r = readoutDirection(this.model.weights, answer, wrong);
    return { dir: Float32Array.from(r.dir), bias: r.bias };
  }
}
