/**
 * TransformerLens' ActivationCache analyses that split the residual stream into a stack of pieces:
 * accumulated_resid, decompose_resid, stack_head_results, stack_neuron_results. Each returns the pieces
 * at the selected positions (default: each prompt's final real position) with a label per piece.
 */

import type { ActivationCache } from "../model/activation-cache.ts";
import { headName } from "../model/component-names.ts";
import type { HookedTransformer } from "../model/hooked-transformer.ts";
import { Tensor } from "../tensor/tensor.ts";
import { gatherPositions, type PositionSelection, type PositionSpec, selectPositions } from "./positions.ts";

/** Pieces of the residual stream: `stack` is [n, batch, nPos, d_model], `labels[i]` names piece i. */
export interface ResidStack {
  labels: string[];
  stack: Tensor;
  sel: PositionSelection;
}

/** The model parts the analyses read (a HookedTransformer satisfies it). */
export type AnalysisModel = Pick<HookedTransformer, "cfg" | "weights">;

export interface StackOptions {
  /** Take pieces before this layer (0..n_layers; default n_layers = the whole model). */
  layer?: number;
  pos?: PositionSpec;
}

function resolveLayer(model: AnalysisModel, layer: number | undefined): number {
  const n = model.cfg.nLayers;
  const l = layer === undefined || layer === -1 ? n : layer;
  if (!Number.isInteger(l) || l < 0 || l > n) {
    throw new Error(`layer ${layer} is out of range: use 0..${n} (${n} = the whole model) or -1`);
  }
  return l;
}

function buildStack(pieces: Float32Array[], labels: string[], sel: PositionSelection, D: number): ResidStack {
  const rows = sel.batch * sel.nPos * D;
  const data = new Float32Array(pieces.length * rows);
  pieces.forEach((p, i) => {
    data.set(p, i * rows);
  });
  return { labels, stack: new Tensor(data, [pieces.length, sel.batch, sel.nPos, D]), sel };
}

/**
 * `accumulated_resid`: resid_pre of layers 0..layer (resid_mid after each layer below `layer` when
 * `inclMid`), with `final_post` (resid_post of the last layer) when layer = n_layers.
 * Labels `0_pre, 0_mid, 1_pre, ..., final_post`.
 */
export function accumulatedResid(
  model: AnalysisModel,
  cache: ActivationCache,
  opts: StackOptions & { inclMid?: boolean } = {},
): ResidStack {
  const n = model.cfg.nLayers;
  const layer = resolveLayer(model, opts.layer);
  const first = cache.get("resid_pre", 0);
  const sel = selectPositions(cache.lengths, first.shape[1], opts.pos);
  const pieces: Float32Array[] = [];
  const labels: string[] = [];
  for (let l = 0; l <= layer; l++) {
    if (l === n) {
      pieces.push(gatherPositions(cache.get("resid_post", n - 1), sel));
      labels.push("final_post");
      continue;
    }
    pieces.push(gatherPositions(cache.get("resid_pre", l), sel));
    labels.push(`${l}_pre`);
    if (opts.inclMid && l < layer) {
      pieces.push(gatherPositions(cache.get("resid_mid", l), sel));
      labels.push(`${l}_mid`);
    }
  }
  return buildStack(pieces, labels, sel, model.cfg.dModel);
}

/**
 * `decompose_resid`: the terms that sum to the residual stream before `layer`:
 * `embed, pos_embed, 0_attn_out, 0_mlp_out, ...` (attn_out includes b_O, mlp_out includes b_out). Models with
 * rotary positions have no `pos_embed` term: positions act inside attention, not on the residual stream.
 */
export function decomposeResid(
  model: AnalysisModel,
  cache: ActivationCache,
  opts: StackOptions & { mode?: "all" | "attn" | "mlp"; inclEmbeds?: boolean } = {},
): ResidStack {
  const layer = resolveLayer(model, opts.layer);
  const mode = opts.mode ?? "all";
  const embed = cache.get("hook_embed");
  const sel = selectPositions(cache.lengths, embed.shape[1], opts.pos);
  const pieces: Float32Array[] = [];
  const labels: string[] = [];
  if (opts.inclEmbeds ?? true) {
    pieces.push(gatherPositions(embed, sel));
    labels.push("embed");
    if (model.cfg.positions === "learned") {
      pieces.push(gatherPositions(cache.get("hook_pos_embed"), sel));
      labels.push("pos_embed");
    }
  }
  for (let l = 0; l < layer; l++) {
    if (mode !== "mlp") {
      pieces.push(gatherPositions(cache.get("attn_out", l), sel));
      labels.push(`${l}_attn_out`);
    }
    if (mode !== "attn") {
      pieces.push(gatherPositions(cache.get("mlp_out", l), sel));
      labels.push(`${l}_mlp_out`);
    }
  }
  return buildStack(pieces, labels, sel, model.cfg.dModel);
}

/**
 * `stack_head_results`: each head's write to the residual stream, `z[..., h, :] @ W_O[h]` (without b_O),
 * for layers before `layer`. Labels `L{l}H{h}`. Reads `attn.hook_z` (no need for `hook_result`).
 */
export function stackHeadResults(
  model: AnalysisModel,
  cache: ActivationCache,
  opts: StackOptions = {},
): ResidStack {
  const { nHeads: H, dHead: dh, dModel: D } = model.cfg;
  const layer = resolveLayer(model, opts.layer);
  const sel = selectPositions(cache.lengths, cache.get("z", 0).shape[1], opts.pos);
  const rows = sel.batch * sel.nPos;
  const pieces: Float32Array[] = [];
  const labels: string[] = [];
  for (let l = 0; l < layer; l++) {
    const z = gatherPositions(cache.get("z", l), sel); // [rows, H, dh]
    const W_O = model.weights.blocks[l].W_O.data; // [H, dh, D]
    for (let h = 0; h < H; h++) {
      const out = new Float32Array(rows * D);
      for (let r = 0; r < rows; r++) {
        const zo = (r * H + h) * dh;
        const o = r * D;
        for (let e = 0; e < dh; e++) {
          const ze = z[zo + e];
          if (ze === 0) continue;
          const wo = (h * dh + e) * D;
          for (let d = 0; d < D; d++) out[o + d] += ze * W_O[wo + d];
        }
      }
      pieces.push(out);
      labels.push(headName(l, h));
    }
  }
  return buildStack(pieces, labels, sel, D);
}

/**
 * `stack_neuron_results`: each neuron's write, `post[..., n] * W_out[n, :]` (without b_out), for layers
 * before `layer`; `neurons` restricts to a subset of indices per layer. Labels `L{l}N{n}`.
 * This is [layers * d_mlp, batch, nPos, d_model]: for attribution onto a direction use
 * `neuronLogitAttrs` (logit-attribution.ts), which never builds it.
 */
export function stackNeuronResults(
  model: AnalysisModel,
  cache: ActivationCache,
  opts: StackOptions & { neurons?: readonly number[] } = {},
): ResidStack {
  const { dMlp, dModel: D } = model.cfg;
  const layer = resolveLayer(model, opts.layer);
  const sel = selectPositions(cache.lengths, cache.get("post", 0).shape[1], opts.pos);
  const neurons = opts.neurons ?? Array.from({ length: dMlp }, (_, n) => n);
  for (const n of neurons) {
    if (!Number.isInteger(n) || n < 0 || n >= dMlp)
      throw new Error(`Neuron ${n} is out of range: the MLP has neurons 0..${dMlp - 1}`);
  }
  const rows = sel.batch * sel.nPos;
  const pieces: Float32Array[] = [];
  const labels: string[] = [];
  for (let l = 0; l < layer; l++) {
    const post = gatherPositions(cache.get("post", l), sel); // [rows, d_mlp]
    const W_out = model.weights.blocks[l].W_out.data; // [d_mlp, D]
    for (const n of neurons) {
      const out = new Float32Array(rows * D);
      for (let r = 0; r < rows; r++) {
        const a = post[r * dMlp + n];
        for (let d = 0; d < D; d++) out[r * D + d] = a * W_out[n * D + d];
      }
      pieces.push(out);
      labels.push(`L${l}N${n}`);
    }
  }
  return buildStack(pieces, labels, sel, D);
}
