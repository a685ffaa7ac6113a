/**
 * The data of a neuron page (a local Neuroscope): top examples with per-token activations, density and
 * histogram from an index, the neuron's direct effect on the logits, and its activations on any text.
 */
import { normalizeText } from "../corpus/normalize.ts";
import type { HookedTransformer } from "../model/hooked-transformer.ts";
import { runMlpPost } from "./mlp-activations.ts";
import type { NeuronIndex } from "./neuron-index.ts";

export interface TokenEffect {
  token: number;
  str: string;
  value: number;
}

export interface NeuronExample {
  contextId: number;
  /** Position of the max-activating token in the context. */
  position: number;
  /** Activation there, as stored in the index. */
  value: number;
  strTokens: string[];
  /** The neuron's activation at every token of the context (recomputed with the model). */
  activations: number[];
  /** Token range [start, end) around `position` worth showing. */
  window: [number, number];
}

export interface NeuronPageData {
  model: string;
  layer: number;
  neuron: number;
  index: {
    dir: string;
    corpus: string;
    tokens: number;
    density: number;
    histogram: { lo: number; hi: number; bins: number; counts: number[] };
    examples: NeuronExample[];
  } | null;
  /** Top and bottom tokens of W_out[neuron] @ W_U (the neuron's direct push on the logits, before any soft-cap). */
  logitEffect: { top: TokenEffect[]; bottom: TokenEffect[] };
  /** The model's final-logit soft-cap (null: none): the logit effect is of the pre-cap logits (preCapNote). */
  finalSoftCap: number | null;
  ownText: { text: string; strTokens: string[]; activations: number[] } | null;
}

export interface NeuronPageOptions {
  index?: NeuronIndex | null;
  text?: string;
  /** Tokens shown before / after the max token of each example (default 24 / 8). */
  before?: number;
  after?: number;
  /** Tokens per side of the logit effect (default 10). */
  logitTokens?: number;
  /** Model name shown on the page. */
  modelName?: string;
}

export function checkNeuron(model: HookedTransformer, layer: number, neuron: number): void {
  const { nLayers, dMlp } = model.cfg;
  if (!Number.isInteger(layer) || layer < 0 || layer >= nLayers) {
    throw new Error(`Layer ${layer} does not exist: this model has layers 0..${nLayers - 1}.`);
  }
  if (!Number.isInteger(neuron) || neuron < 0 || neuron >= dMlp) {
    throw new Error(`Neuron ${neuron} does not exist: MLP layers of this model have neurons 0..${dMlp - 1}.`);
  }
}

/** The neuron's activation at every token of each token list. */
export function neuronActivations(
  model: HookedTransformer,
  layer: number,
  neuron: number,
  tokenLists: readonly (readonly number[])[],
): number[][] {
  if (tokenLists.length === 0) return [];
  const { actsBPM, pos } = runMlpPost(model, tokenLists, [layer]);
  const dMlp = model.cfg.dMlp;
  return tokenLists.map((toks, b) => toks.map((_, p) => actsBPM[0][(b * pos + p) * dMlp + neuron]));
}

/**
 * Direct logit effect W_out[neuron] @ W_U [d_vocab]: the tokens this neuron's output promotes or suppresses.
 * It is linear, so of the pre-cap logits when the model soft-caps them (cfg.finalSoftCap). Without weight processing the final norm's gain still sits between them, so it is applied here
 * (processing folds it into W_U).
 */
export function neuronLogitEffect(model: HookedTransformer, layer: number, neuron: number): Float32Array {
  const D = model.cfg.dModel;
  return directionLogitEffect(
    model,
    model.weights.blocks[layer].W_out.data.subarray(neuron * D, (neuron + 1) * D),
  );
}

/** A residual-stream direction [d_model] through the final norm's gain and W_U: its push on each logit [d_vocab]. */
export function directionLogitEffect(model: HookedTransformer, dirD: Float32Array): Float32Array {
  const { dModel: D, dVocab: V } = model.cfg;
  const wOutRow = dirD;
  const W_U = model.weights.W_U.data; // [D, V]
  const gain = model.weights.lnFinal?.w.data ?? null;
  const effect = new Float32Array(V);
  for (let d = 0; d < D; d++) {
    const w = wOutRow[d] * (gain ? gain[d] : 1);
    const row = d * V;
    for (let v = 0; v < V; v++) effect[v] += w * W_U[row + v];
  }
  return effect;
}

/** The n largest (or smallest) entries, ties by lower token id. */
export function extremeTokens(
  model: HookedTransformer,
  values: Float32Array,
  n: number,
  largest: boolean,
): TokenEffect[] {
  const order = Array.from(values.keys()).sort(
    (a, b) => (largest ? values[b] - values[a] : values[a] - values[b]) || a - b,
  );
  return order
    .slice(0, n)
    .map((token) => ({ token, str: model.tokenizer.decode([token]), value: values[token] }));
}

export function neuronPageData(
  model: HookedTransformer,
  layer: number,
  neuron: number,
  opts: NeuronPageOptions = {},
): NeuronPageData {
  checkNeuron(model, layer, neuron);
  const before = opts.before ?? 24;
  const after = opts.after ?? 8;
  const nLogit = opts.logitTokens ?? 10;
  const effect = neuronLogitEffect(model, layer, neuron);
  const page: NeuronPageData = {
    model: opts.modelName ?? model.source,
    layer,
    neuron,
    index: null,
    logitEffect: {
      top: extremeTokens(model, effect, nLogit, true),
      bottom: extremeTokens(model, effect, nLogit, false),
    },
    finalSoftCap: model.cfg.finalSoftCap ?? null,
    ownText: null,
  };

  const index = opts.index;
  if (index) {
    if (index.manifest.settings.dMlp !== model.cfg.dMlp) {
      throw new Error(
        `Index ${index.dir} was built for d_mlp ${index.manifest.settings.dMlp} (model ${index.manifest.settings.model}), ` +
          `this model has ${model.cfg.dMlp}: use the model the index was built with.`,
      );
    }
    const summary = index.summary(layer, neuron);
    const contexts = summary.examples.map((e) => index.contextTokens(e.contextId));
    const acts = neuronActivations(model, layer, neuron, contexts);
    page.index = {
      dir: index.dir,
      corpus: index.manifest.settings.corpus,
      tokens: summary.tokens,
      density: summary.density,
      histogram: summary.histogram,
      examples: summary.examples.map((e, i) => ({
        contextId: e.contextId,
        position: e.position,
        value: e.value,
        strTokens: model.tokenizer.toStrTokens(contexts[i]),
        activations: acts[i],
        window: [Math.max(0, e.position - before), Math.min(contexts[i].length, e.position + after + 1)],
      })),
    };
  }

  if (opts.text !== undefined) {
    // Normalised like the corpus, so "don’t" and "don't" read the same to the neuron.
    const tokens = model.tokenizer.toTokens(normalizeText(opts.text));
    const [activations] = neuronActivations(model, layer, neuron, [tokens]);
    page.ownText = { text: opts.text, strTokens: model.tokenizer.toStrTokens(tokens), activations };
  }
  return page;
}
