/**
 * The data of an SAE feature's page (a local Neuronpedia): top examples and quantile groups with per-token
 * activations, density and histogram from a feature index, and the feature's direct push on the logits
 * (W_dec[f] through the final norm's gain and W_U, as for neurons).
 */
import { existsSync } from "node:fs";
import { dirname, join } from "node:path";
import { normalizeText } from "../corpus/normalize.ts";
import type { TranscoderSet } from "../graphs/transcoder-set.ts";
import { parseHookName } from "../model/hook-points.ts";
import type { HookedTransformer } from "../model/hooked-transformer.ts";
import type { Sae } from "../sae/sae.ts";
import type { NeuronIndex, NeuronSummary, QuantileGroup } from "./neuron-index.ts";
import {
  directionLogitEffect,
  extremeTokens,
  type NeuronExample,
  type NeuronPageData,
  type TokenEffect,
} from "./neuron-page.ts";
import { saeUnitSource, transcoderUnitSource } from "./unit-source.ts";

export interface FeaturePageData {
  model: string;
  /** The SAE, or the transcoder set, as given. */
  sae: string;
  /** The hook the feature reads. */
  hook: string;
  feature: number;
  /** A transcoder feature: its layer (the page is of feature `feature` of that layer's transcoder). */
  transcoderLayer?: number;
  index:
    | (NonNullable<NeuronPageData["index"]> & {
        /** Examples sampled from equal activation bands (null: the index kept no band samples). */
        quantileGroups: { lo: number; hi: number; tokens: number | null; examples: NeuronExample[] }[] | null;
      })
    | null;
  /** Top and bottom tokens of W_dec[f] @ W_U (null: the SAE's hook does not write the residual stream). */
  logitEffect: { top: TokenEffect[]; bottom: TokenEffect[] } | null;
  /** The model's final-logit soft-cap (null: none): the logit effect is of the pre-cap logits (preCapNote). */
  finalSoftCap: number | null;
  ownText: { text: string; strTokens: string[]; activations: number[] } | null;
}

/** Where a transcoder set keeps its feature index (`index --transcoders DIR --out DIR/feature-index`). */
export const TRANSCODER_INDEX_DIR = "feature-index";

/** The set's own feature index, when it has one (a directory set only; null otherwise). */
export function defaultTranscoderIndex(setDirOrConfig: string): string | null {
  const dir = /\.ya?ml$/.test(setDirOrConfig) ? dirname(setDirOrConfig) : setDirOrConfig;
  const path = join(dir, TRANSCODER_INDEX_DIR);
  return existsSync(join(path, "manifest.json")) ? path : null;
}

const WRITES_RESIDUAL = /^(hook_resid_(pre|mid|post)|hook_attn_out|hook_mlp_out)$/;

/** The feature's activation at every token of each token list. */
export function featureActivations(
  model: HookedTransformer,
  sae: Sae,
  feature: number,
  tokenLists: readonly (readonly number[])[],
): number[][] {
  if (tokenLists.length === 0) return [];
  const { blocksRW, pos } = saeUnitSource(model, sae).run(tokenLists);
  const dSae = sae.dSae;
  return tokenLists.map((toks, b) => toks.map((_, p) => blocksRW[0][(b * pos + p) * dSae + feature]));
}

/** What a feature page needs of the dictionary the feature belongs to (an SAE or one transcoder). */
interface FeatureSource {
  name: string;
  hook: string;
  dFeatures: number;
  /** What the feature writes per unit of activation into the residual stream (null: it does not write it). */
  decoderRow: (feature: number) => Float32Array | null;
  activations: (feature: number, tokenLists: readonly (readonly number[])[]) => number[][];
  /** The index's summary and quantile groups of this feature, after checking the index is of this source. */
  indexed: (
    index: NeuronIndex,
    feature: number,
    bands: number,
  ) => { summary: NeuronSummary; groups: QuantileGroup[] | null };
}

export interface FeaturePageOptions {
  index?: NeuronIndex | null;
  text?: string;
  saeName?: string;
  modelName?: string;
  /** Quantile bands (default 5), tokens before / after an example's token (24 / 8), logit tokens (10). */
  bands?: number;
  before?: number;
  after?: number;
  logitTokens?: number;
}

export function featurePageData(
  model: HookedTransformer,
  sae: Sae,
  feature: number,
  opts: FeaturePageOptions = {},
): FeaturePageData {
  const { dSae, dIn, hookName } = sae.cfg;
  return pageData(
    model,
    {
      name: opts.saeName ?? hookName,
      hook: hookName,
      dFeatures: dSae,
      decoderRow: (f) =>
        WRITES_RESIDUAL.test(parseHookName(hookName).hook) && dIn === model.cfg.dModel
          ? // The decoder's output is divided by activation_scaler's factor.
            sae.W_dec.slice(f * dIn, (f + 1) * dIn).map((v) => v / sae.scalingFactor)
          : null,
      activations: (f, lists) => featureActivations(model, sae, f, lists),
      indexed: (index, f, bands) => {
        const built = index.sae;
        if (!built || built.hook !== hookName || built.dSae !== dSae) {
          throw new Error(
            `${index.dir} is not a feature index of this SAE (${built ? `it indexes ${built.path} at ${built.hook}` : "it is not an SAE feature index"}): build one with index --sae.`,
          );
        }
        return { summary: index.featureSummary(f), groups: index.quantileGroups(f, bands) };
      },
    },
    feature,
    opts,
  );
}

/**
 * The page of feature `feature` of layer `layer`'s transcoder: examples from a transcoder feature index
 * (`index --transcoders`), activations on its input hook, and W_dec[f]'s direct push on the logits (it writes
 * the MLP output, so the residual stream).
 */
export function transcoderFeaturePageData(
  model: HookedTransformer,
  set: TranscoderSet,
  layer: number,
  feature: number,
  opts: FeaturePageOptions & { setName?: string } = {},
): FeaturePageData {
  const tc = set.transcoders.find((t) => t.layer === layer);
  if (!tc) {
    throw new Error(
      `Layer ${layer} has no transcoder: the set has layers ${set.transcoders.map((t) => t.layer).join(", ")}.`,
    );
  }
  const setName = opts.setName ?? "transcoders";
  const hook = `blocks.${layer}.${set.featureInputHook}`;
  const single: TranscoderSet = { ...set, transcoders: [tc] };
  const page = pageData(
    model,
    {
      name: setName,
      hook,
      dFeatures: tc.dTranscoder,
      decoderRow: (f) => tc.wDec.slice(f * tc.dModel, (f + 1) * tc.dModel),
      activations: (f, lists) => {
        if (lists.length === 0) return [];
        const { blocksRW, pos } = transcoderUnitSource(model, single).run(lists);
        return lists.map((toks, b) => toks.map((_, p) => blocksRW[0][(b * pos + p) * tc.dTranscoder + f]));
      },
      indexed: (index, f, bands) => {
        const built = index.transcoders;
        if (!built || built.inputHook !== set.featureInputHook || built.dTranscoder !== tc.dTranscoder) {
          throw new Error(
            `${index.dir} is not a feature index of this transcoder set (${built ? `it indexes ${built.path}` : "it is not a transcoder feature index"}): build one with index --transcoders.`,
          );
        }
        const unit = index.transcoderUnit(layer, f);
        return {
          summary: index.transcoderFeatureSummary(layer, f),
          groups: index.quantileGroups(unit, bands),
        };
      },
    },
    feature,
    opts,
  );
  return { ...page, transcoderLayer: layer };
}

function pageData(
  model: HookedTransformer,
  src: FeatureSource,
  feature: number,
  opts: FeaturePageOptions,
): FeaturePageData {
  const dSae = src.dFeatures;
  if (!Number.isInteger(feature) || feature < 0 || feature >= dSae) {
    throw new Error(
      `Feature ${feature} does not exist: the ${src.name} has features 0..${dSae - 1} (${dSae} features).`,
    );
  }
  const before = opts.before ?? 24;
  const after = opts.after ?? 8;
  const nLogit = opts.logitTokens ?? 10;
  let logitEffect: FeaturePageData["logitEffect"] = null;
  const row = src.decoderRow(feature);
  if (row) {
    const effect = directionLogitEffect(model, row);
    logitEffect = {
      top: extremeTokens(model, effect, nLogit, true),
      bottom: extremeTokens(model, effect, nLogit, false),
    };
  }
  const page: FeaturePageData = {
    model: opts.modelName ?? model.source,
    sae: src.name,
    hook: src.hook,
    feature,
    index: null,
    logitEffect,
    finalSoftCap: model.cfg.finalSoftCap ?? null,
    ownText: null,
  };

  const index = opts.index;
  if (index) {
    const { summary, groups } = src.indexed(index, feature, opts.bands ?? 5);
    const refs = [...summary.examples, ...(groups ?? []).flatMap((g) => g.examples)];
    const contexts = refs.map((e) => index.contextTokens(e.contextId));
    const acts = src.activations(feature, contexts);
    const shown = refs.map((e, i) => ({
      contextId: e.contextId,
      position: e.position,
      value: acts[i][e.position],
      strTokens: model.tokenizer.toStrTokens(contexts[i]),
      activations: acts[i],
      window: [Math.max(0, e.position - before), Math.min(contexts[i].length, e.position + after + 1)] as [
        number,
        number,
      ],
    }));
    let next = summary.examples.length;
    page.index = {
      dir: index.dir,
      corpus: index.manifest.settings.corpus,
      tokens: summary.tokens,
      density: summary.density,
      histogram: summary.histogram,
      // Top examples keep the value stored in the index; recomputed values only colour the tokens.
      examples: shown.slice(0, next).map((e, i) => ({ ...e, value: summary.examples[i].value })),
      quantileGroups: groups
        ? groups.map((g) => {
            const examples = shown.slice(next, next + g.examples.length);
            next += g.examples.length;
            return { lo: g.lo, hi: g.hi, tokens: g.tokens, examples };
          })
        : null,
    };
  }

  if (opts.text !== undefined) {
    const tokens = model.tokenizer.toTokens(normalizeText(opts.text));
    const [activations] = src.activations(feature, [tokens]);
    page.ownText = { text: opts.text, strTokens: model.tokenizer.toStrTokens(tokens), activations };
  }
  return page;
}
