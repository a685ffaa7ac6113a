/**
 * The replacement model's constants at the prompt's own run: the transcoder features each layer's MLP input
 * turns on, and each MLP output's error node (the real MLP output minus the transcoder's reconstruction), so
 * that features' writes + b_dec (+ skip) + error = the real MLP output exactly at every position but the first.
 * Position 0 (BOS) is circuit-tracer's `zero_positions`: its feature activations and its error vectors are
 * zeroed, so the BOS position's MLP outputs are constants of the linearised model (like the biases), not
 * nodes; its token-embedding node stays (circuit-tracer keeps `W_E[tokens]` at every position). With a
 * cross-layer transcoder, a layer's reconstruction holds the writes of the features of every layer up to it.
 */
import type { ActivationCache } from "../model/activation-cache.ts";
import { allHookNames } from "../model/hook-points.ts";
import type { HookedTransformer } from "../model/hooked-transformer.ts";
import { type ActiveFeature, sortFeatures } from "./attribution-graph.ts";
import { decoderRow, encodeTranscoder, type Transcoder, type TranscoderSet } from "./transcoder-set.ts";

export interface ReplacementRun {
  inputTokens: number[];
  /** Active features (activation ≠ 0), sorted by (layer, pos, feature); none at position 0. */
  features: ActiveFeature[];
  /** [nLayers, nPos, d_model]: the real MLP output minus the reconstruction; zero at position 0 (BOS). */
  errors: Float32Array;
  /** [d_vocab]: the logits at the last position. */
  lastLogits: Float32Array;
  /** The run's cache: the set's hooks and any `alsoCache` names (batch 1). */
  cache: ActivationCache;
}

/** W_dec·activations + b_dec + W_skip·input of one position ([d_model]). */
export function reconstructMlpOut(
  tc: Transcoder,
  activations: Float32Array,
  input: Float32Array,
): Float32Array {
  const D = tc.dModel;
  const out = Float32Array.from(tc.bDec);
  for (let f = 0; f < tc.dTranscoder; f++) {
    const a = activations[f];
    if (a === 0) continue;
    for (let d = 0; d < D; d++) out[d] += a * tc.wDec[f * D + d];
  }
  if (tc.wSkip) {
    for (let o = 0; o < D; o++) {
      let s = 0;
      for (let i = 0; i < D; i++) s += tc.wSkip[o * D + i] * input[i];
      out[o] += s;
    }
  }
  return out;
}

/**
 * Layer l's MLP-output reconstruction at one position ([d_model]) from every layer's feature activations
 * (`acts[k]`, [d_tc]) and inputs (`inputs[k]`, [d_model]): a per-layer set's is `reconstructMlpOut` of its own
 * transcoder; a cross-layer transcoder's sums the writes of the features of every layer k ≤ l
 * (W_dec_k[f, l − k]) on b_dec[l] (entries of `acts` above l are not read).
 */
export function reconstructLayer(
  set: TranscoderSet,
  l: number,
  acts: readonly Float32Array[],
  inputs: readonly Float32Array[],
): Float32Array {
  if (!set.crossLayer) return reconstructMlpOut(set.transcoders[l], acts[l], inputs[l]);
  const out = Float32Array.from(set.transcoders[l].bDec);
  for (let k = 0; k <= l; k++) {
    const F = set.transcoders[k].dTranscoder;
    for (let f = 0; f < F; f++) {
      const a = acts[k][f];
      if (a === 0) continue;
      const row = decoderRow(set, k, f, l);
      for (let d = 0; d < out.length; d++) out[d] += a * row[d];
    }
  }
  return out;
}

/** Every layer's reconstruction at one position ([L] of [d_model]): the decoder of the whole set. */
export function reconstructMlpOuts(
  set: TranscoderSet,
  acts: readonly Float32Array[],
  inputs: readonly Float32Array[],
): Float32Array[] {
  return set.transcoders.map((_, l) => reconstructLayer(set, l, acts, inputs));
}

/** Refuses a set whose depth, d_model or hook names do not fit `model`, naming the problem and the fix. */
export function checkTranscoderSet(model: HookedTransformer, set: TranscoderSet): void {
  const L = model.cfg.nLayers;
  if (set.transcoders.length !== L) {
    throw new Error(
      `the transcoder set has ${set.transcoders.length} layers but the model has ${L}: use the model's own set`,
    );
  }
  const D = model.cfg.dModel;
  if (set.transcoders[0].dModel !== D) {
    throw new Error(`the transcoders read d_model ${set.transcoders[0].dModel} but the model's is ${D}`);
  }
  const names = Array.from({ length: L }, (_, l) => [
    `blocks.${l}.${set.featureInputHook}`,
    `blocks.${l}.${set.featureOutputHook}`,
  ]).flat();
  const known = new Set(allHookNames(model.cfg, { includeOptional: true }));
  for (const name of names) {
    if (!known.has(name)) {
      throw new Error(
        `the transcoder set's hook ${name.replace(/^blocks\.\d+\./, "")} is not a hook of this model: ` +
          "feature_input_hook and feature_output_hook are block-relative TransformerLens names (e.g. ln2.hook_normalized, hook_mlp_out)",
      );
    }
  }
}

/**
 * One run of `model` on `tokens` with the set's input and output hooks cached, and `alsoCache` (hooks a
 * caller needs from the same run, e.g. the patterns and norm scales the graph's backward freezes).
 */
export function replacementRun(
  model: HookedTransformer,
  tokens: readonly number[],
  set: TranscoderSet,
  alsoCache: readonly string[] = [],
): ReplacementRun {
  checkTranscoderSet(model, set);
  const L = model.cfg.nLayers;
  const D = model.cfg.dModel;
  const inputName = (l: number) => `blocks.${l}.${set.featureInputHook}`;
  const outputName = (l: number) => `blocks.${l}.${set.featureOutputHook}`;
  const names = new Set(Array.from({ length: L }, (_, l) => [inputName(l), outputName(l)]).flat());
  const { logits, cache } = model.runWithCache([tokens], { namesFilter: [...names, ...alsoCache] });
  const nPos = tokens.length;
  const features: ActiveFeature[] = [];
  const errors = new Float32Array(L * nPos * D);
  const input = Array.from({ length: L }, (_, l) => cache.get(inputName(l)).data);
  const output = Array.from({ length: L }, (_, l) => cache.get(outputName(l)).data);
  // Position by position, every layer at once: a cross-layer transcoder's layer l' reconstruction needs the
  // features of every layer up to l'.
  for (let p = 0; p < nPos; p++) {
    const xs = input.map((x) => x.subarray(p * D, (p + 1) * D));
    const acts = xs.map((x, l) => encodeTranscoder(set.transcoders[l], x));
    acts.forEach((layerActs, l) => {
      if (p === 0) layerActs.fill(0);
      layerActs.forEach((a, f) => {
        if (a !== 0) features.push({ layer: l, pos: p, feature: f, activation: a });
      });
    });
    if (p === 0) continue; // circuit-tracer: error_vectors[:, zero_positions] = 0
    reconstructMlpOuts(set, acts, xs).forEach((recon, l) => {
      const base = (l * nPos + p) * D;
      for (let d = 0; d < D; d++) errors[base + d] = output[l][p * D + d] - recon[d];
    });
  }
  if (!logits) throw new Error("replacementRun: the model returned no logits");
  const V = logits.shape[logits.shape.length - 1];
  return {
    inputTokens: [...tokens],
    features: sortFeatures(features),
    errors,
    lastLogits: logits.data.slice((nPos - 1) * V, nPos * V),
    cache,
  };
}
