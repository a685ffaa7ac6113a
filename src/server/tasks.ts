/**
 * The model runs behind the API, executed inside the model worker. Each takes validated parameters and
 * returns plain JSON (figures are `src/viz` Figure objects, mounted as-is by the page).
 */

import { attributeLogitDiff, attributionJson } from "../analysis/attribute.ts";
import { headPatterns } from "../analysis/head-patterns.ts";
import { preCapNote } from "../analysis/logit-attribution.ts";
import { answerReport, topPredictions } from "../analysis/predictions.ts";
import { CircuitTask } from "../circuits/circuit-task.ts";
import { DEFAULT_COMPARE_TOP } from "../circuits/defaults.ts";
import { type CircuitResult, findCircuit } from "../circuits/find-circuit.ts";
import { promptGraph } from "../graphs/prompt-graph.ts";
import type { TranscoderSet } from "../graphs/transcoder-set.ts";
import { headName } from "../model/component-names.ts";
import type { HookedTransformer } from "../model/hooked-transformer.ts";
import { readoutDirection } from "../model/readout.ts";
import { type FeaturePageData, featurePageData, transcoderFeaturePageData } from "../neurons/feature-page.ts";
import { featureReport } from "../neurons/feature-report.ts";
import type { NeuronIndex } from "../neurons/neuron-index.ts";
import { neuronPageData } from "../neurons/neuron-page.ts";
import { neuronReport } from "../neurons/neuron-report.ts";
import { activationPatching } from "../patching/activation-patching.ts";
import { saeHookName, saeSplice } from "../sae/attach.ts";
import type { Sae } from "../sae/sae.ts";
import { circuitGraphSvg } from "../viz/circuit-graph.ts";
import type { AttentionFigure } from "../viz/figure.ts";
import type { ReportSection } from "../viz/html/report.ts";
import { attributionFigures } from "../viz/presets/attribution-figures.ts";
import {
  circuitGraphData,
  circuitScoreLabel,
  circuitSummary,
  faithfulnessCurve,
} from "../viz/presets/circuit-figures.ts";
import { patchFigures, patchInputsList } from "../viz/presets/patch-figures.ts";
import { attentionView } from "../viz/views/view-figures.ts";
import { explorerTarget } from "./patch-targets.ts";

/** What a task gets besides its parameters: progress reporting and cancellation. */
export interface TaskContext {
  /** Reports (done, total); aborts `signal` first if the job was cancelled. */
  progress(done: number, total: number): void;
  signal: AbortSignal;
  /** The neuron index given to `serve --neuron-index`, opened on first use. */
  neuronIndex(): NeuronIndex | null;
  /** The transcoder set given to `serve --transcoders` (checked against the model at start-up). */
  transcoders(): TranscoderSet | null;
  /** The SAE given to `serve --sae` (loaded at start-up), and its feature index (`--feature-index`). */
  sae(): Sae | null;
  featureIndex(): NeuronIndex | null;
  /** The transcoder feature index of the set (`serve --transcoder-index`, or the set's own), opened on first use. */
  transcoderIndex(): NeuronIndex | null;
  /** The model, SAE and transcoder set as pages name them: as the user gave them, never this machine's absolute path. */
  names: { model: string; sae?: string; transcoders?: string; transcoderIndex?: string };
}

export interface PredictParams {
  prompt: string;
  topK: number;
  answer?: string;
  wrong?: string;
  /** With an SAE: the position whose most active features are listed (default the last). */
  featurePos?: number;
}

/** Features listed in the prediction view and by text search. */
const TOP_FEATURES = 10;

export function predictTask(model: HookedTransformer, p: PredictParams, ctx?: TaskContext) {
  const tokens = model.toTokens(p.prompt);
  const sae = ctx?.sae() ?? null;
  // With the SAE's error term the prediction is the model's own; the cache gives the features.
  const run = sae ? saeRun(model, sae, tokens) : null;
  const row = run ? run.logits : model.run([tokens], { logits: "last" }).data; // [d_vocab]
  const report = (s: string | undefined) =>
    s === undefined ? undefined : answerReport(row, model.toSingleToken(s), model.tokenizer);
  const answer = report(p.answer);
  const wrong = report(p.wrong);
  return {
    tokens,
    strTokens: model.toStrTokens(tokens),
    top: topPredictions(row, p.topK, model.tokenizer),
    ...(answer ? { answer } : {}),
    ...(wrong ? { wrong } : {}),
    ...(answer && wrong ? { logitDiff: answer.logit - wrong.logit } : {}),
    ...(run && sae ? { features: featuresAt(run.acts, sae, tokens.length, p.featurePos) } : {}),
  };
}

/** A run with the SAE spliced in with its error term: final logits and the features [pos, d_sae]. */
function saeRun(model: HookedTransformer, sae: Sae, tokens: number[]) {
  const acts = saeHookName(sae, "hook_sae_acts_post");
  const r = model.runWithCache([tokens], {
    splices: [saeSplice(sae, { useErrorTerm: true })],
    namesFilter: [acts],
    logits: "last",
  });
  return { logits: r.logits!.data, acts: r.cache.get(acts).data };
}

/** The most active features at one position (default the last), largest first. */
function featuresAt(acts: Float32Array, sae: Sae, n: number, pos = n - 1) {
  if (!Number.isInteger(pos) || pos < 0 || pos >= n)
    throw new Error(`featurePos ${pos} is not a position of the prompt: use 0 to ${n - 1}`);
  const { dSae } = sae.cfg;
  const row = acts.subarray(pos * dSae, (pos + 1) * dSae);
  const active = [...row.keys()].filter((f) => row[f] > 0);
  active.sort((a, b) => row[b] - row[a] || a - b);
  return {
    hook: sae.cfg.hookName,
    pos,
    top: active.slice(0, TOP_FEATURES).map((feature) => ({ feature, activation: row[feature] })),
  };
}

/** One head (`layer`, `head`) or, with `heads: "all"`, every head of every layer. */
export type AttentionParams = { prompt: string } & (
  | { layer: number; head: number; heads?: undefined }
  | { heads: "all"; layer?: undefined; head?: undefined }
);

/**
 * JSON writes a float32 weight as a 17-digit double; 7 decimals keep float32's precision on a 0..1 weight
 * and make an all-heads answer about half the size.
 */
function roundWeight(v: number): number {
  return Math.round(v * 1e7) / 1e7;
}

/**
 * Attention patterns over the prompt (`blocks.L.attn.hook_pattern` [batch, head, dest, src]), one per query
 * head (grouped-query models share keys between heads, not patterns). Heads are labelled LxHy, layer by
 * layer, which the explorer's thumbnail grid reads as its rows and columns.
 */
export function attentionTask(model: HookedTransformer, p: AttentionParams): AttentionFigure {
  const { nLayers, nHeads } = model.cfg;
  const heads =
    p.heads === "all"
      ? Array.from({ length: nLayers * nHeads }, (_, k) => ({
          layer: Math.floor(k / nHeads),
          head: k % nHeads,
        }))
      : [{ layer: p.layer, head: p.head }];
  const tokens = model.toTokens(p.prompt);
  const patterns = headPatterns(model, tokens, heads);
  return attentionView({
    title:
      p.heads === "all"
        ? `Attention patterns of all ${heads.length} heads (${nLayers} layers × ${nHeads} heads)`
        : `Attention pattern of ${headName(p.layer, p.head)}`,
    tokens: model.toStrTokens(tokens),
    heads: heads.map(({ layer, head }, k) => ({
      label: headName(layer, head),
      pattern: patterns[k].map((row) => row.map(roundWeight)),
    })),
  });
}

export interface AttributionParams {
  prompt: string;
  answer: string;
  wrong: string;
}

/** Logit difference read off the residual stream after each layer, and each head's direct contribution. */
export function attributionTask(model: HookedTransformer, p: AttributionParams) {
  const { nLayers, nHeads } = model.cfg;
  const answer = model.toSingleToken(p.answer);
  const wrong = model.toSingleToken(p.wrong);
  const result = attributeLogitDiff(model, [model.toTokens(p.prompt)], answer, wrong);
  const r = attributionJson(result, nLayers, nHeads);
  const figs = attributionFigures(result, {
    prompts: [p.prompt],
    answer: p.answer,
    wrong: p.wrong,
    nLayers,
    nHeads,
    finalSoftCap: model.cfg.finalSoftCap,
  });
  return {
    logitDiff: r.logitDiff,
    accumulated: r.accumulatedResid,
    heads: r.heads,
    figures: { perLayer: figs.accumulated.figure, heads: figs.heads.figure },
    captions: {
      perLayer: figs.accumulated.caption,
      heads: `${figs.heads.caption} Click a head for its attention.`,
    },
  };
}

export interface PatchingParams {
  clean: string;
  corrupted: string;
  answer: string;
  wrong: string;
  target: string;
}

/** Activation patching of one target, drawn by the shared patching preset ([layer, pos] or [layer, head]). */
export async function patchingTask(model: HookedTransformer, p: PatchingParams, ctx: TaskContext) {
  const target = explorerTarget(p.target);
  if (!target) throw new Error(`Unknown patching target "${p.target}"`);
  const result = await activationPatching(model, {
    clean: [p.clean],
    corrupted: [p.corrupted],
    answers: { answer: model.toSingleToken(p.answer), wrong: model.toSingleToken(p.wrong) },
    target,
    onProgress: (done, total) => ctx.progress(done, total),
    signal: ctx.signal,
  });
  const inputs = {
    clean: [p.clean],
    corrupted: [p.corrupted],
    answer: p.answer,
    wrong: p.wrong,
    cleanTokens: model.toStrTokens(p.clean),
    corruptedTokens: model.toStrTokens(p.corrupted),
  };
  const [{ figure, caption }] = patchFigures(result, inputs);
  const [rows, cols] = result.shape; // [layer, pos] or [layer, head]
  const values: number[][] = [];
  for (let r = 0; r < rows; r++) values.push(Array.from(result.values.subarray(r * cols, (r + 1) * cols)));
  const summary = `Done: ${rows * cols} patched runs. Clean logit diff ${result.clean.toFixed(3)}, corrupted ${result.corrupted.toFixed(3)}.`;
  return {
    figure,
    caption,
    inputs: patchInputsList(result, inputs),
    summary,
    clean: result.clean,
    corrupted: result.corrupted,
    axes: result.axes,
    values,
  };
}

export interface CircuitParams {
  clean: string;
  corrupted: string;
  answer: string;
  wrong: string;
  method: "eap" | "eap-ig";
  /** The smallest top-n circuit reaching this faithfulness. */
  faithfulness: number;
}

/**
 * The smallest circuit of edges reaching a faithfulness (EAP or EAP-IG scores, exact check on the top DEFAULT_COMPARE_TOP edges):
 * its layered graph as SVG, the faithfulness curve, and the sentences that state the numbers.
 */
export async function circuitTask(model: HookedTransformer, p: CircuitParams, ctx: TaskContext) {
  const task = new CircuitTask(model, {
    clean: [model.toTokens(p.clean)],
    corrupted: [model.toTokens(p.corrupted)],
    answer: [model.toSingleToken(p.answer)],
    wrong: [model.toSingleToken(p.wrong)],
  });
  let r: CircuitResult;
  try {
    r = await findCircuit(task, {
      method: p.method,
      igSteps: 5,
      faithfulness: p.faithfulness,
      compareTop: DEFAULT_COMPARE_TOP,
      onProgress: (_phase, done, total) => ctx.progress(done, total),
      signal: ctx.signal,
    });
  } finally {
    task.dispose(); // the explorer's next request runs the model
  }
  const heads = [...new Set(r.circuit.edges.flatMap((e) => e.split("->")))]
    .map((n) => /^a(\d+)\.h(\d+)/.exec(n))
    .filter((m): m is RegExpExecArray => m !== null)
    .map((m) => `${m[1]}.${m[2]}`);
  return {
    svg: circuitGraphSvg(circuitGraphData(r, model.cfg.nLayers, "this model")),
    curve: faithfulnessCurve(r, r.circuit.edges.length),
    summary: circuitSummary(r).join(" "),
    edges: r.circuit.edges,
    heads: [...new Set(heads)],
    inputs: [
      // Lists, as the patching panel's and the CLI pages' prompts (numbered from 0).
      { label: "clean prompts", value: [p.clean] },
      { label: "corrupted prompts", value: [p.corrupted] },
      {
        label: "metric",
        value: `logit(${JSON.stringify(p.answer)}) − logit(${JSON.stringify(p.wrong)}), final position`,
      },
      { label: "scores", value: circuitScoreLabel(r) },
    ],
  };
}

export interface NeuronParams {
  layer: number;
  neuron: number;
  /** Also show the neuron's activation on this text (the page's prompt). */
  text?: string;
}

/** A neuron page (top examples from the index when there is one, logit effect, activation on the prompt). */
export function neuronTask(
  model: HookedTransformer,
  p: NeuronParams,
  ctx: TaskContext,
): { title: string; sections: ReportSection[]; indexed: boolean; note?: string } {
  const index = ctx.neuronIndex();
  // A layer the index does not hold still has a page (logit effect, activation on the prompt), without corpus examples.
  const usable = index?.layers.includes(p.layer) ? index : null;
  const page = neuronPageData(model, p.layer, p.neuron, {
    index: usable,
    text: p.text,
    modelName: ctx.names.model,
  });
  const report = neuronReport(page);
  const note =
    index && !usable
      ? `The neuron index has no layer ${p.layer} (it has ${index.layers.join(", ")}): index that layer with --layers for corpus examples.`
      : undefined;
  return {
    title: report.title,
    sections: report.sections,
    indexed: page.index !== null,
    ...(note ? { note } : {}),
  };
}

export interface GraphParams {
  prompt: string;
  /** Logit tokens to explain (text of single tokens); empty: the top logits until p ≥ 0.95, at most 10. */
  targets: string[];
  nodeThreshold: number;
  edgeThreshold: number;
  /** The model's name as the explorer shows it: the graph's scan when the set names no model. */
  modelName: string;
}

/**
 * A prompt's attribution graph over the server's transcoders, pruned: the front-end JSON `graph --out`
 * writes (the same promptGraph), drawn by the graph panel. Progress counts backward targets.
 */
export async function graphTask(model: HookedTransformer, p: GraphParams, ctx: TaskContext) {
  const set = ctx.transcoders();
  if (!set) throw new Error("This explorer was started without transcoders (serve --transcoders DIR).");
  const { frontEnd, scores } = await promptGraph(model, model.toTokens(p.prompt), set, {
    prompt: p.prompt,
    slug: "explorer-graph",
    scan: set.modelName ?? p.modelName,
    nodeThreshold: p.nodeThreshold,
    edgeThreshold: p.edgeThreshold,
    targets: p.targets.map((t) => model.toSingleToken(t)),
    onProgress: (done, total) => ctx.progress(done, total),
    signal: ctx.signal,
  });
  return {
    graph: frontEnd,
    replacementScore: scores.replacementScore,
    completenessScore: scores.completenessScore,
    // "" unless the model soft-caps its logits: edges into logit nodes are then of the pre-cap logits.
    preCapNote: preCapNote(model.cfg.finalSoftCap, "graph edges"),
  };
}

/** The server's SAE, or the error a feature request gets without one. */
function requireSae(ctx: TaskContext): Sae {
  const sae = ctx.sae();
  if (!sae)
    throw new Error(
      "This explorer was started without an SAE: restart it with circuitscope serve --model M --sae DIR (an SAELens directory)",
    );
  return sae;
}

export interface FeatureParams {
  feature: number;
  /** Also show the feature's activation on this text. */
  text?: string;
}

/** A feature page (top examples, quantile groups, histogram and density from the feature index; logits). */
export function featureTask(model: HookedTransformer, p: FeatureParams, ctx: TaskContext) {
  const sae = requireSae(ctx);
  const index = ctx.featureIndex();
  const page = featurePageData(model, sae, p.feature, {
    index,
    text: p.text,
    saeName: ctx.names.sae,
    modelName: ctx.names.model,
  });
  return featurePageView(
    page,
    "No feature index was given (serve --feature-index DIR): examples, quantile groups, histogram and density are not computed.",
  );
}

/** A feature page as the explorer draws it: the feature report's sections; `note` when it has no index. */
function featurePageView(page: FeaturePageData, noIndexNote: string) {
  const report = featureReport(page);
  return {
    title: report.title,
    sections: report.sections,
    indexed: page.index !== null,
    ...(page.index ? {} : { note: noIndexNote }),
  };
}

export interface TranscoderFeatureParams {
  layer: number;
  feature: number;
  /** Also show the feature's activation on this text (the graph's prompt). */
  text?: string;
}

/**
 * A transcoder feature's page (a graph's feature node): the page `feature --transcoders` shows, from the
 * set's feature index (top examples, histogram, density), W_dec[f]'s direct push on the logits, and its
 * activations on `text`. The route refuses requests without an index, so the page always has its examples.
 */
export function transcoderFeatureTask(
  model: HookedTransformer,
  p: TranscoderFeatureParams,
  ctx: TaskContext,
) {
  const set = ctx.transcoders();
  if (!set) throw new Error("This explorer was started without transcoders (serve --transcoders DIR).");
  const page = transcoderFeaturePageData(model, set, p.layer, p.feature, {
    index: ctx.transcoderIndex(),
    text: p.text,
    setName: ctx.names.transcoders,
    modelName: ctx.names.model,
  });
  // The page names its index; by the name the user gave, never this machine's absolute path.
  if (page.index && ctx.names.transcoderIndex) page.index.dir = ctx.names.transcoderIndex;
  return {
    ...featurePageView(
      page,
      "No transcoder feature index: examples, histogram and density are not computed.",
    ),
    layer: p.layer,
    feature: p.feature,
  };
}

export type FeatureSearchParams = { top?: number } & (
  | { token: string; text?: undefined }
  | { text: string; token?: undefined }
);

/**
 * Feature search. By token: the features whose decoder direction raises that token's logit most (its direct
 * effect through the final norm's gain and W_U, as on the feature page). By text: the features most active
 * anywhere in the text (their largest activation, and where).
 */
export function featureSearchTask(model: HookedTransformer, p: FeatureSearchParams, ctx: TaskContext) {
  const sae = requireSae(ctx);
  const { dIn, dSae } = sae.cfg;
  const top = p.top ?? TOP_FEATURES;
  if (p.token !== undefined) {
    const token = model.toSingleToken(p.token);
    const dir = readoutDirection(model.weights, token).dir;
    const gain = model.weights.lnFinal?.w.data ?? null;
    const col = Float64Array.from(dir, (v, d) => (v * (gain ? gain[d] : 1)) / sae.scalingFactor);
    const effect = new Float64Array(dSae);
    for (let f = 0; f < dSae; f++) {
      let s = 0;
      for (let d = 0; d < dIn; d++) s += sae.W_dec[f * dIn + d] * col[d];
      effect[f] = s;
    }
    const order = [...effect.keys()].sort((a, b) => effect[b] - effect[a] || a - b).slice(0, top);
    return {
      by: "token",
      token: p.token,
      features: order.map((feature) => ({ feature, logitEffect: effect[feature] })),
      // "" unless the model soft-caps its logits: the effects are then on the pre-cap logit.
      preCapNote: preCapNote(model.cfg.finalSoftCap, "logit effects"),
    };
  }
  const tokens = model.toTokens(p.text!);
  const { acts } = saeRun(model, sae, tokens);
  const best = Array.from({ length: dSae }, (_, feature) => {
    let value = 0;
    let pos = -1;
    for (let q = 0; q < tokens.length; q++) {
      const v = acts[q * dSae + feature];
      if (v > value) [value, pos] = [v, q];
    }
    return { feature, value, pos };
  }).filter((b) => b.pos >= 0);
  best.sort((a, b) => b.value - a.value || a.feature - b.feature);
  const strTokens = model.toStrTokens(tokens);
  return {
    by: "text",
    strTokens,
    features: best
      .slice(0, top)
      .map((b) => ({ feature: b.feature, activation: b.value, pos: b.pos, token: strTokens[b.pos] })),
  };
}
