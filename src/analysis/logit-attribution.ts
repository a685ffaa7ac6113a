/**
 * Logit attribution: how much each residual piece pushes the logit of one token above another.
 * Everything projects onto a d_model direction first (W_U[:, answer] - W_U[:, wrong]), so no piece is
 * ever multiplied by the full unembedding: one pass over the stack, O(pieces * rows * d_model).
 */
import type { ActivationCache } from "../model/activation-cache.ts";
import { normalizeStack } from "../model/normalization.ts";
import { readoutDirection } from "../model/readout.ts";
import { Tensor } from "../tensor/tensor.ts";
import { type TokenPerPrompt, tokensPerPrompt } from "./answer-metrics.ts";
import { gatherPositions, type PositionSelection, type PositionSpec, selectPositions } from "./positions.ts";
import type { AnalysisModel, ResidStack } from "./residual-stack.ts";

/**
 * How a piece is normalised before the final LayerNorm reads it (TransformerLens `apply_ln_to_stack`):
 * - `"cached"`: centre it and divide by the CACHED LayerNorm scale at its position. Linear, so the
 *   pieces of a decomposition add up to the final logit difference (minus the offsets);
 * - `"recompute"`: centre it and divide by its own sqrt(mean(x^2) + eps) (the "logit lens");
 * - `"none"`: use the raw piece.
 */
export type LnMode = "cached" | "recompute" | "none";

export interface LnOptions {
  ln?: LnMode;
  /** Which LayerNorm's cached scale: n_layers (default) = ln_final, l < n_layers = blocks.l.ln1. */
  layer?: number;
}

/**
 * What a figure shows that a final soft-cap (Gemma 2's final_logit_softcapping) comes after:
 * - `"attributions"`: logit attributions (attribute --html, the explorer's attribution panel, study reports);
 * - `"logit effects"`: a direction's direct effect on the logits through W_U (neuron and feature pages, the
 *   explorer's feature search by token, study neuron figures);
 * - `"graph edges"`: an attribution graph, whose edges into a logit node are effects on its demeaned logit
 *   while the node's probability is the model's own.
 */
export type PreCapSubject = "attributions" | "logit effects" | "graph edges";

/**
 * The one sentence a figure of `subject` appends when the model soft-caps its logits: its numbers are of the
 * pre-cap logits, the only ones linear in the residual stream. "" for an uncapped model.
 */
export function preCapNote(
  finalSoftCap: number | null | undefined,
  subject: PreCapSubject = "attributions",
): string {
  if (finalSoftCap == null) return "";
  const capped = ` The model soft-caps its logits (cap · tanh(logit / cap), cap ${finalSoftCap}): `;
  switch (subject) {
    case "attributions":
      return `${capped}these are attributions of the pre-cap logit difference, which is linear in the residual stream; the capped difference the model outputs is not their sum.`;
    case "logit effects":
      // cap · tanh(x / cap) has slope 1 - tanh² ≤ 1: a capped logit never moves more than its pre-cap one.
      return `${capped}these are direct effects on the pre-cap logits, which are linear in the residual stream; the capped logits the model outputs move by no more than this, and less the nearer they are to the cap.`;
    case "graph edges":
      return `${capped}edges into a logit node are direct effects on its demeaned pre-cap logit; the node's probability p is the model's, after the cap.`;
  }
}

/** Per-prompt residual directions for a logit difference, and the part no residual piece carries. */
export interface LogitDirections {
  batch: number;
  /** [batch, d_model]: the direction read from the LN-normalised residual (centring and scale applied). */
  dirs: Float32Array;
  /** [batch]: b_U[answer] - b_U[wrong], plus ln_final.b · (W_U[:, answer] - W_U[:, wrong]) when LN is not folded. */
  offsets: Float64Array;
}

/**
 * `W_U[:, answer] - W_U[:, wrong]` per prompt (the logit-difference direction). When the final LayerNorm
 * is not folded into W_U (no weight processing), its weight is folded into the direction and its bias
 * into the offset, so attribution stays exact either way.
 */
export function logitDiffDirections(
  model: AnalysisModel,
  answers: TokenPerPrompt,
  wrongs: TokenPerPrompt,
  batch: number,
): LogitDirections {
  const { dModel: D, dVocab: V } = model.cfg;
  const a = tokensPerPrompt(answers, batch, V, "answer");
  const w = tokensPerPrompt(wrongs, batch, V, "wrong");
  const { lnFinal } = model.weights;
  const dirs = new Float32Array(batch * D);
  const offsets = new Float64Array(batch);
  for (let b = 0; b < batch; b++) {
    const { dir, bias } = readoutDirection(model.weights, a[b], w[b]);
    let off = bias;
    for (let d = 0; d < D; d++) {
      dirs[b * D + d] = lnFinal ? dir[d] * lnFinal.w.data[d] : dir[d];
      if (lnFinal) off += dir[d] * lnFinal.b.data[d];
    }
    offsets[b] = off;
  }
  return { batch, dirs, offsets };
}

function scaleHookName(model: AnalysisModel, layer: number | undefined): string {
  const n = model.cfg.nLayers;
  const l = layer === undefined || layer === -1 ? n : layer;
  if (!Number.isInteger(l) || l < 0 || l > n)
    throw new Error(`layer ${layer} is out of range: use 0..${n} or -1`);
  return l === n ? "ln_final.hook_scale" : `blocks.${l}.ln1.hook_scale`;
}

/** The cached LayerNorm scale at each selected position, [batch * nPos]. */
function cachedScales(model: AnalysisModel, cache: ActivationCache, sel: PositionSelection, layer?: number) {
  return gatherPositions(cache.get(scaleHookName(model, layer)), sel);
}

/**
 * `apply_ln_to_stack`: every piece centred over d_model and divided by the cached scale at its position
 * ("cached") or by its own statistics ("recompute"). Returns a new stack of the same shape.
 */
export function applyLnToStack(
  model: AnalysisModel,
  cache: ActivationCache,
  rs: ResidStack,
  opts: LnOptions = {},
): ResidStack {
  const mode = opts.ln ?? "cached";
  if (mode === "none") return rs;
  const { dModel: D, normalization, lnEps } = model.cfg;
  const rows = rs.sel.batch * rs.sel.nPos;
  const scales = mode === "cached" ? cachedScales(model, cache, rs.sel, opts.layer) : null;
  const out = normalizeStack({
    kind: normalization,
    stack: rs.stack.data,
    n: rs.labels.length,
    rows,
    D,
    scales,
    eps: lnEps,
  });
  return { labels: rs.labels, stack: new Tensor(out, rs.stack.shape), sel: rs.sel };
}

/** Attribution of each piece: `values` [n, batch, nPos] per prompt, `mean` [n, nPos] over the batch. */
export interface LogitAttribution {
  labels: string[];
  batch: number;
  nPos: number;
  values: Float64Array;
  mean: Float64Array;
}

function meanOverBatch(values: Float64Array, n: number, batch: number, nPos: number): Float64Array {
  const mean = new Float64Array(n * nPos);
  for (let i = 0; i < n; i++)
    for (let b = 0; b < batch; b++)
      for (let p = 0; p < nPos; p++) mean[i * nPos + p] += values[(i * batch + b) * nPos + p] / batch;
  return mean;
}

/**
 * `logit_attrs`: each piece, normalised as `ln` says, dotted with its prompt's direction. With "cached"
 * the pieces of `decomposeResid` sum to (logit[answer] - logit[wrong]) - offsets.
 */
export function logitAttrs(
  model: AnalysisModel,
  cache: ActivationCache,
  rs: ResidStack,
  dirs: LogitDirections,
  opts: LnOptions = {},
): LogitAttribution {
  const mode = opts.ln ?? "cached";
  const D = model.cfg.dModel;
  const { batch, nPos } = rs.sel;
  if (dirs.batch !== batch)
    throw new Error(`Directions are for ${dirs.batch} prompts but the stack has ${batch}`);
  const n = rs.labels.length;
  const rows = batch * nPos;
  const scales = mode === "cached" ? cachedScales(model, cache, rs.sel, opts.layer) : null;
  const centre = model.cfg.normalization === "layernorm"; // RMSNorm does not centre
  const dirSum = new Float64Array(batch);
  if (centre) for (let b = 0; b < batch; b++) for (let d = 0; d < D; d++) dirSum[b] += dirs.dirs[b * D + d];
  const x = rs.stack.data;
  const values = new Float64Array(n * rows);
  for (let i = 0; i < n; i++)
    for (let r = 0; r < rows; r++) {
      const b = Math.floor(r / nPos);
      const o = (i * rows + r) * D;
      const dOff = b * D;
      let dot = 0;
      let sum = 0;
      let sumSq = 0;
      for (let d = 0; d < D; d++) {
        const v = x[o + d];
        dot += v * dirs.dirs[dOff + d];
        sum += v;
        sumSq += v * v;
      }
      if (mode === "none") {
        values[i * rows + r] = dot;
        continue;
      }
      const mean = centre ? sum / D : 0;
      // Centring the piece is the same as centring the direction: (x - mean) · d = x · d - mean * sum(d).
      const centredDot = dot - mean * dirSum[b];
      const s = scales ? scales[r] : Math.sqrt(Math.max(sumSq / D - mean * mean, 0) + model.cfg.lnEps);
      values[i * rows + r] = centredDot / s;
    }
  return { labels: rs.labels, batch, nPos, values, mean: meanOverBatch(values, n, batch, nPos) };
}

/**
 * Logit attribution of every neuron `post[..., n] * W_out[n, :]` of layers before `layer`, WITHOUT building
 * the [layers * d_mlp, ..., d_model] stack: each W_out row is projected onto the centred direction once,
 * then each neuron costs one multiply per position. Same values as `logitAttrs(stackNeuronResults(...))`.
 */
export function neuronLogitAttrs(
  model: AnalysisModel,
  cache: ActivationCache,
  dirs: LogitDirections,
  opts: LnOptions & { layer?: number; pos?: PositionSpec } = {},
): LogitAttribution {
  const { dMlp, nLayers } = model.cfg;
  const layer = opts.layer === undefined || opts.layer === -1 ? nLayers : opts.layer;
  if (!Number.isInteger(layer) || layer < 0 || layer > nLayers)
    throw new Error(`layer ${opts.layer} is out of range: use 0..${nLayers} or -1`);
  // The neuron stack is normalised with ln_final's scale (its own pieces' statistics for "recompute").
  const parts = Array.from({ length: layer }, (_, l) =>
    weightRowLogitAttrs(
      model,
      cache,
      dirs,
      {
        W: model.weights.blocks[l].W_out.data,
        acts: cache.get("post", l),
        labels: Array.from({ length: dMlp }, (_, nn) => `L${l}N${nn}`),
      },
      { ln: opts.ln, pos: opts.pos },
    ),
  );
  const { batch, nPos } = selectPositions(cache.lengths, cache.get("post", 0).shape[1], opts.pos);
  if (dirs.batch !== batch)
    throw new Error(`Directions are for ${dirs.batch} prompts but the cache has ${batch}`);
  const values = new Float64Array(layer * dMlp * batch * nPos);
  parts.forEach((part, l) => {
    values.set(part.values, l * part.values.length);
  });
  const labels = parts.flatMap((part) => part.labels);
  return { labels, batch, nPos, values, mean: meanOverBatch(values, labels.length, batch, nPos) };
}

/**
 * Logit attribution of pieces that are an activation times a fixed d_model row — `acts[r, i] · W[i, :]`
 * (a neuron and its W_out row, an SAE feature and its W_dec row) — without building the stack: each row
 * is projected onto the (centred) direction once, then each piece costs one multiply per position (its
 * own statistics, for "recompute", are |act| times those of its row). Same values as `logitAttrs` of the
 * stack of those pieces. `pos`: default each prompt's final position.
 */
export function weightRowLogitAttrs(
  model: AnalysisModel,
  cache: ActivationCache,
  dirs: LogitDirections,
  pieces: {
    /** [n, d_model]. */
    W: Float32Array;
    /** [batch, pos, n] activations, e.g. a cached hook. */
    acts: Tensor;
    labels: string[];
  },
  opts: { ln?: LnMode; pos?: PositionSpec } = {},
): LogitAttribution {
  const mode = opts.ln ?? "cached";
  const D = model.cfg.dModel;
  const n = pieces.labels.length;
  const { W } = pieces;
  if (W.length !== n * D || pieces.acts.shape[2] !== n) {
    throw new Error(
      `weightRowLogitAttrs: ${n} labels need W [${n}, ${D}] and activations [batch, pos, ${n}]`,
    );
  }
  const sel = selectPositions(cache.lengths, pieces.acts.shape[1], opts.pos);
  const { batch, nPos } = sel;
  if (dirs.batch !== batch)
    throw new Error(`Directions are for ${dirs.batch} prompts but the cache has ${batch}`);
  const rows = batch * nPos;
  const scales = mode === "cached" ? cachedScales(model, cache, sel) : null;
  const acts = gatherPositions(pieces.acts, sel); // [rows, n]
  // Centring W[i] is the same as centring the direction; prompts sharing answer and wrong tokens share
  // one direction, so each distinct direction is projected once.
  const centre = model.cfg.normalization === "layernorm"; // RMSNorm does not centre
  const { unique, ofPrompt } = distinctDirections(dirs, D, mode !== "none" && centre);
  const values = new Float64Array(n * rows);
  const proj = new Float64Array(unique.length); // W[i] · dir_u
  for (let i = 0; i < n; i++) {
    const o = i * D;
    let sum = 0;
    let sumSq = 0;
    for (let d = 0; d < D; d++) {
      const w = W[o + d];
      sum += w;
      sumSq += w * w;
    }
    const mean = centre ? sum / D : 0;
    const rowVar = Math.max(sumSq / D - mean * mean, 0); // mean square of W[i], after centring for LayerNorm
    unique.forEach((u, k) => {
      let dot = 0;
      for (let d = 0; d < D; d++) dot += W[o + d] * u[d];
      proj[k] = dot;
    });
    for (let r = 0; r < rows; r++) {
      const act = acts[r * n + i];
      const p = act * proj[ofPrompt[Math.floor(r / nPos)]];
      values[i * rows + r] =
        mode === "none" ? p : p / (scales ? scales[r] : Math.sqrt(act * act * rowVar + model.cfg.lnEps));
    }
  }
  return { labels: pieces.labels, batch, nPos, values, mean: meanOverBatch(values, n, batch, nPos) };
}

/** The distinct rows of `dirs` (centred when asked) and which one each prompt uses. */
function distinctDirections(dirs: LogitDirections, D: number, centre: boolean) {
  const unique: Float64Array[] = [];
  const keys = new Map<string, number>();
  const ofPrompt = new Int32Array(dirs.batch);
  for (let b = 0; b < dirs.batch; b++) {
    const row = dirs.dirs.subarray(b * D, (b + 1) * D);
    const key = Array.prototype.join.call(row, ",");
    let k = keys.get(key);
    if (k === undefined) {
      const v = Float64Array.from(row);
      if (centre) {
        const mean = v.reduce((a, x) => a + x, 0) / D;
        for (let d = 0; d < D; d++) v[d] -= mean;
      }
      k = unique.push(v) - 1;
      keys.set(key, k);
    }
    ofPrompt[b] = k;
  }
  return { unique, ofPrompt };
}
