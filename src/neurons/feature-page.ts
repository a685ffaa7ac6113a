/**
 * The data of an SAE feature's page (a local Neuronpedia): top examples and quantile groups with per-token
 * activations, density and histogram from a feature index, and the feature's direct push on the logits
 * (W_dec[f] through the final norm's gain and W_U, as for neurons).
 */
import { normalizeText } from "../corpus/normalize.ts";
import { parseHookName } from "../model/hook-points.ts";
import type { HookedTransformer } from "../model/hooked-transformer.ts";
import type { Sae } from "../sae/sae.ts";
import type { NeuronIndex } from "./neuron-index.ts";
import {
  directionLogitEffect,
  extremeTokens,
  type NeuronExample,
  type NeuronPageData,
  type TokenEffect,
} from "./neuron-page.ts";
import { saeUnitSource } from "./unit-source.ts";

export interface FeaturePageData {
  model: string;
  sae: string;
  hook: string;
  feature: number;
  index:
    | (NonNullable<NeuronPageData["index"]> & {
        /** Examples sampled from equal activation bands (null: the index kept no band samples). */
        quantileGroups: { lo: number; hi: number; tokens: number | null; examples: NeuronExample[] }[] | null;
      })
    | null;
  /** Top and bottom tokens of W_dec[f] @ W_U (null: the SAE's hook does not write the residual stream). */
  logitEffect: { top: TokenEffect[]; bottom: TokenEffect[] } | null;
  ownText: { text: string; strTokens: string[]; activations: number[] } | null;
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

export function featurePageData(
  model: HookedTransformer,
  sae: Sae,
  feature: number,
  opts: {
    index?: NeuronIndex | null;
    text?: string;
    saeName?: string;
    modelName?: string;
    /** Quantile bands (default 5), tokens before / after an example's token (24 / 8), logit tokens (10). */
    bands?: number;
    before?: number;
    after?: number;
    logitTokens?: number;
  } = {},
): FeaturePageData {
  const { dSae, dIn, hookName } = sae.cfg;
  if (!Number.isInteger(feature) || feature < 0 || feature >= dSae) {
    throw new Error(
      `Feature ${feature} does not exist: the SAE has features 0..${dSae - 1} (d_sae ${dSae}).`,
    );
  }
  const before = opts.before ?? 24;
  const after = opts.after ?? 8;
  const nLogit = opts.logitTokens ?? 10;
  let logitEffect: FeaturePageData["logitEffect"] = null;
  if (WRITES_RESIDUAL.test(parseHookName(hookName).hook) && dIn === model.cfg.dModel) {
    // The decoder's output is divided by activation_scaler's factor.
    const row = sae.W_dec.slice(feature * dIn, (feature + 1) * dIn).map((v) => v / sae.scalingFactor);
    const effect = directionLogitEffect(model, row);
    logitEffect = {
      top: extremeTokens(model, effect, nLogit, true),
      bottom: extremeTokens(model, effect, nLogit, false),
    };
  }
  const page: FeaturePageData = {
    model: opts.modelName ?? model.source,
    sae: opts.saeName ?? hookName,
    hook: hookName,
    feature,
    index: null,
    logitEffect,
    ownText: null,
  };

  const index = opts.index;
  if (index) {
    const built = index.sae;
    if (!built || built.hook !== hookName || built.dSae !== dSae) {
      throw new Error(
        `${index.dir} is not a feature index of this SAE (${built ? `it indexes ${built.path} at ${built.hook}` : "it is a neuron index"}): build one with index --sae.`,
      );
    }
    const summary = index.featureSummary(feature);
    const groups = index.quantileGroups(feature, opts.bands ?? 5);
    const refs = [...summary.examples, ...(groups ?? []).flatMap((g) => g.examples)];
    const contexts = refs.map((e) => index.contextTokens(e.contextId));
    const acts = featureActivations(model, sae, feature, contexts);
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
    const [activations] = featureActivations(model, sae, feature, [tokens]);
    page.ownText = { text: opts.text, strTokens: model.tokenizer.toStrTokens(tokens), activations };
  }
  return page;
}
