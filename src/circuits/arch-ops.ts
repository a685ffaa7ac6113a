/**
 * The pieces of one architecture the edge-masked forward needs, read from the model's weights and config:
 * the input node, the normalisations (each with its backward), every head's q/k/v projection stacked so
 * that each head input is projected by its own weights, the MLP and the unembedding direction of a logit
 * difference. Everything else in src/circuits is architecture-free.
 */
import { layerNormBackward } from "../gradients/layer-norm-backward.ts";
import { activationDerivative, centerAndScale, divideRows } from "../model/activations.ts";
import type { HookedTransformer } from "../model/hooked-transformer.ts";
import { HookDispatcher } from "../model/hooks.ts";
import type { LayerNormParams } from "../model/weights.ts";
import type { Kernels } from "../tensor/kernels.ts";

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

export interface MlpSaved {
  pre: Float32Array;
}

export class ArchOps {
  readonly kernels: Kernels;
  readonly D: number;
  readonly H: number;
  readonly dh: number;
  private readonly heads: HeadWeights[];

  constructor(readonly model: HookedTransformer) {
    const { cfg, weights } = model;
    this.kernels = model.kernels;
    this.D = cfg.dModel;
    this.H = cfg.nHeads;
    this.dh = cfg.dHead;
    const { H, D, dh } = this;
    this.heads = weights.blocks.map((b) => {
      const W = new Float32Array(3 * H * D * dh);
      const bias = new Float32Array(3 * H * dh);
      for (const [which, w] of [b.W_Q, b.W_K, b.W_V].entries()) W.set(w.data, which * H * D * dh);
      for (const [which, w] of [b.b_Q, b.b_K, b.b_V].entries()) bias.set(w.data, which * H * dh);
      return { W, b: bias, W_O: b.W_O.data, b_O: b.b_O.data };
    });
  }

  get nLayers(): number {
    return this.heads.length;
  }

  headWeights(layer: number): HeadWeights {
    return this.heads[layer];
  }

  /** The `input` node's output: the residual entering block 0 (embeddings, with positions where learned). */
  inputNode(tokens: Int32Array, B: number, P: number): Float32Array {
    const res = this.model.forwardEngine.forward({
      batch: B,
      pos: P,
      tokens,
      stopAtLayer: 0,
      hooks: new HookDispatcher(this.nLayers),
      logits: "none",
    });
    return res.residual.data;
  }

  private normParams(site: NormSite): LayerNormParams | null {
    const w = this.model.weights;
    return site.which === "final" ? w.lnFinal : w.blocks[site.layer][site.which];
  }

  /** Normalise each row of x [rows, D]. */
  norm(site: NormSite, x: Float32Array, rows: number): { y: Float32Array; scale: Float32Array } {
    const { D } = this;
    const { centered, scale } = centerAndScale(x, rows, D, this.model.cfg.lnEps);
    const y = divideRows(centered, scale, D);
    const ln = this.normParams(site);
    if (ln) {
      const w = ln.w.data;
      const b = ln.b.data;
      for (let o = 0; o < y.length; o += D) for (let d = 0; d < D; d++) y[o + d] = y[o + d] * w[d] + b[d];
    }
    return { y, scale };
  }

  normBackward(
    site: NormSite,
    x: Float32Array,
    scale: Float32Array,
    gY: Float32Array,
    rows: number,
  ): Float32Array {
    return layerNormBackward(x, scale, this.normParams(site), gY, rows, this.D).gInput;
  }

  /** Rotary positions would rotate q and k here ([H, B, P, dh] per input); learned positions need nothing. */
  rotate(_qk: Float32Array, _P: number, _inverse: boolean): void {}

  /** The MLP's node output (with its output bias) for normalised rows x [rows, D]. */
  mlp(layer: number, x: Float32Array, rows: number): { out: Float32Array; saved: MlpSaved } {
    const ops = this.model.forwardEngine.blockOps(layer);
    const pre = ops.mlpIn.forward(x, rows);
    const post = this.kernels.activation(this.model.cfg.act, pre);
    return { out: ops.mlpOut.forward(post, rows), saved: { pre } };
  }

  mlpBackward(layer: number, saved: MlpSaved, gOut: Float32Array, rows: number): Float32Array {
    const ops = this.model.forwardEngine.blockOps(layer);
    const gPost = ops.mlpOut.backward(gOut, rows);
    const act = this.model.cfg.act;
    const { pre } = saved;
    for (let i = 0; i < gPost.length; i++) if (gPost[i] !== 0) gPost[i] *= activationDerivative(act, pre[i]);
    return ops.mlpIn.backward(gPost, rows);
  }

  /** logit(answer) − logit(wrong) = y · dir + bias for final normalised residual y. */
  logitDiffDirection(answer: number, wrong: number): { dir: Float32Array; bias: number } {
    const { W_U, b_U } = this.model.weights;
    const V = this.model.cfg.dVocab;
    const dir = new Float32Array(this.D);
    for (let d = 0; d < this.D; d++) dir[d] = W_U.data[d * V + answer] - W_U.data[d * V + wrong];
    return { dir, bias: b_U.data[answer] - b_U.data[wrong] };
  }
}
