/**
 * Attribution graph (when the spec names transcoders): the graph of the focus group's first prompt over the
 * spec's transcoder set (src/graphs, circuit-tracer's semantics), with the answer and wrong tokens as its two
 * logit targets. Each feature's total effect on logit(answer) − logit(wrong) is read from the graph
 * (activation × (τ_answer − τ_wrong), every feature path through the linearised replacement model), and the
 * strongest token → feature → logit-difference paths (the token's edge into the feature × the feature's effect
 * per unit of activation), over every position and from the cue's positions (where the clean and corrupted
 * prompts differ): the direct ones are all at the last token, so the cue's own are listed apart. The pruned graph's page is written into the report (graph/graph.html).
 */
import { attributeGraph, checkGraphHooks } from "../../graphs/attribute-graph.ts";
import { nodeRanges } from "../../graphs/attribution-graph.ts";
import { featureLogitEffects } from "../../graphs/graph-check.ts";
import { frontEndGraph } from "../../graphs/graph-files.ts";
import { graphScores, pruneGraph } from "../../graphs/prune.ts";
import { checkTranscoderSet } from "../../graphs/replacement-run.ts";
import { loadTranscoderSet, type TranscoderSet } from "../../graphs/transcoder-set.ts";
import type { StudyContext } from "../context.ts";
import { f2, modelPreCapNote } from "../format.ts";
import type { Finding, StudyGraphFeature, StudyGraphResult, StudyResults } from "../results.ts";
import type { Stage, StageSlice, StudySection } from "../stage.ts";

const GRAPH_FILE = "graph/graph.html";
/** circuit-tracer's default pruning thresholds (the page shows the pruned graph). */
const NODE_THRESHOLD = 0.8;
const EDGE_THRESHOLD = 0.98;

export const graphStage: Stage = {
  name: "attribution graph",
  async run(ctx): Promise<StageSlice> {
    const spec = ctx.spec.graph;
    if (!spec) return {};
    const set = await loadSet(ctx, spec.transcoders);
    if (!set) return {};
    const { model } = ctx;
    const pair = ctx.focus.pairs[0];
    const tokens = ctx.focus.tokens.clean[0];
    const answer = ctx.focus.tokens.answer[0];
    const wrong = ctx.focus.tokens.wrong[0];
    const tick = ctx.work(1);
    const { graph } = await attributeGraph(model, tokens, set, { targets: [answer, wrong] });
    tick(1);
    const text = (t: number) => model.toString([t]);
    const scores = graphScores(graph);
    const { nNodes: n, tokenStart } = nodeRanges(graph);
    const tauAnswer = featureLogitEffects(graph, graph.logitTokens.indexOf(answer)).total;
    const tauWrong = featureLogitEffects(graph, graph.logitTokens.indexOf(wrong)).total;
    const perUnit = graph.features.map((_, i) => tauAnswer[i] - tauWrong[i]);
    const named = (i: number): StudyGraphFeature => {
      const f = graph.features[i];
      return {
        nodeId: `${f.layer}_${f.feature}_${f.pos}`,
        layer: f.layer,
        feature: f.feature,
        pos: f.pos,
        token: text(tokens[f.pos]),
        activation: f.activation,
        effect: f.activation * perUnit[i],
      };
    };
    const byEffect = [...graph.features.keys()].sort(
      (i, j) =>
        Math.abs(graph.features[j].activation * perUnit[j]) -
          Math.abs(graph.features[i].activation * perUnit[i]) || i - j,
    );
    const corrupted = ctx.focus.tokens.corrupted[0];
    const paths: StudyGraphResult["paths"] = [];
    for (let p = 0; p < tokens.length; p++)
      for (let i = 0; i < graph.features.length; i++) {
        const edge = graph.adjacency[i * n + tokenStart + p];
        if (edge !== 0)
          paths.push({ pos: p, token: text(tokens[p]), feature: named(i), weight: edge * perUnit[i] });
      }
    paths.sort((a, b) => Math.abs(b.weight) - Math.abs(a.weight));
    const cuePaths = paths.filter((p) => tokens[p.pos] !== corrupted[p.pos]);
    const pruned = pruneGraph(graph, { nodeThreshold: NODE_THRESHOLD, edgeThreshold: EDGE_THRESHOLD });
    const frontEnd = frontEndGraph(graph, pruned, {
      slug: `${ctx.spec.id}-${ctx.focus.name}`,
      scan: set.modelName ?? ctx.modelName,
      transcoderList: set.ids,
      prompt: pair.clean,
      promptTokens: graph.inputTokens.map(text),
      logitTokens: graph.logitTokens.map(text),
      nodeThreshold: NODE_THRESHOLD,
    });
    return {
      graph: {
        prompt: pair.clean,
        transcoders: spec.transcoders,
        answer: text(answer),
        wrong: text(wrong),
        nFeatures: graph.features.length,
        replacementScore: scores.replacementScore,
        completenessScore: scores.completenessScore,
        top: byEffect.slice(0, spec.top).map(named),
        paths: paths.slice(0, spec.paths),
        cuePaths: cuePaths.slice(0, spec.paths),
        file: GRAPH_FILE,
      },
      graphPage: { file: GRAPH_FILE, frontEnd, edgeThreshold: EDGE_THRESHOLD },
    };
  },
  sections(res) {
    const g = res.graph;
    if (!g) return [];
    // The graph's effects are on the demeaned pre-cap logits when the model soft-caps them.
    const preCap = modelPreCapNote(res);
    const effect = preCap ? "effect (pre-cap)" : "effect";
    const weight = preCap ? "path weight (pre-cap)" : "path weight";
    const section: StudySection = {
      heading: "Attribution graph",
      text:
        `The attribution graph (circuit-tracer's semantics, src/graphs) of one prompt, the focus group's first: ${JSON.stringify(g.prompt)}, with ${JSON.stringify(g.answer)} and ${JSON.stringify(g.wrong)} as its logit targets, over the transcoders ${g.transcoders} (trained on ${res.study.graph?.trainedOn ?? "unstated data"}). ` +
        `${g.nFeatures} features are active; replacement score ${f2(g.replacementScore)}, completeness score ${f2(g.completenessScore)} (circuit-tracer's compute_graph_scores: the share of the graph's influence that flows from tokens rather than error nodes, and the share of edge weight that is not from error nodes). ` +
        `A feature's effect is its total effect on logit(${JSON.stringify(g.answer)}) − logit(${JSON.stringify(g.wrong)}) (demeaned logits) through every feature path of the linearised replacement model — the graph's prediction for this one prompt, not an intervention in the model, and not a statement about other prompts. ` +
        `The pruned graph (node threshold ${NODE_THRESHOLD}, edge threshold ${EDGE_THRESHOLD}): ${g.file}.${preCap}`,
      figures: [],
      tables: [
        {
          caption: `The ${g.top.length} features with the largest |effect| on logit(${JSON.stringify(g.answer)}) − logit(${JSON.stringify(g.wrong)}) (layer_feature_position).${preCap}`,
          columns: ["feature", "layer", "position (token)", "activation", effect],
          rows: g.top.map((t) => [
            t.nodeId,
            String(t.layer),
            `${t.pos} (${JSON.stringify(t.token)})`,
            f2(t.activation),
            f2(t.effect),
          ]),
        },
        {
          caption: `The ${g.paths.length} strongest token → feature → logit-difference paths (the token's edge into the feature × the feature's effect per unit of activation).${preCap}`,
          columns: ["token (position)", "feature", weight],
          rows: g.paths.map((p) => [`${JSON.stringify(p.token)} (${p.pos})`, p.feature.nodeId, f2(p.weight)]),
        },
        {
          caption: `The ${g.cuePaths.length} strongest such paths from the gender cue's positions (where the clean and corrupted prompts differ); through frozen attention.${preCap}`,
          columns: ["token (position)", "feature", weight],
          rows: g.cuePaths.map((p) => [
            `${JSON.stringify(p.token)} (${p.pos})`,
            p.feature.nodeId,
            f2(p.weight),
          ]),
        },
      ],
    };
    return [section];
  },
  findings(res) {
    return res.graph ? [graphFinding(res.graph, res)] : [];
  },
};

function graphFinding(g: StudyGraphResult, res: StudyResults): Finding {
  const diff = `logit(${JSON.stringify(g.answer)}) − logit(${JSON.stringify(g.wrong)})`;
  const feature = (t: StudyGraphFeature) => `${t.nodeId} at ${JSON.stringify(t.token)} (${signed(t.effect)})`;
  const path = (p: StudyGraphResult["paths"][number]) =>
    `${JSON.stringify(p.token)} (position ${p.pos}) → ${p.feature.nodeId} (${signed(p.weight)})`;
  return {
    groups: [res.focusGroup],
    text:
      `In the attribution graph of one ${res.focusGroup} prompt (${g.nFeatures} active features; replacement score ${f2(g.replacementScore)}, completeness ${f2(g.completenessScore)}), ` +
      `the features with the largest total effect on ${diff} are ${g.top.map(feature).join(", ")}; ` +
      `the strongest token → feature → ${diff} paths are ${g.paths.map(path).join(", ")}; ` +
      `from the cue's positions (where the clean and corrupted prompts differ) ${g.cuePaths.length ? g.cuePaths.map(path).join(", ") : "none (no edge from them)"} (the graph's linear predictions on this prompt).`,
    evidence: Object.fromEntries([
      ["graph.replacementScore", g.replacementScore],
      ["graph.completenessScore", g.completenessScore],
      ["graph.nFeatures", g.nFeatures],
      ...g.top.map((t) => [`graph.top[${t.nodeId}].effect`, t.effect]),
      ...g.paths.map((p) => [`graph.paths[${p.pos}→${p.feature.nodeId}].weight`, p.weight]),
      ...g.cuePaths.map((p) => [`graph.cuePaths[${p.pos}→${p.feature.nodeId}].weight`, p.weight]),
    ]),
  };
}

const signed = (x: number) => `${x >= 0 ? "+" : ""}${f2(x)}`;

/** The spec's transcoders, checked against the model; null (with the reason in meta.omitted) when they do not fit. */
async function loadSet(ctx: StudyContext, dir: string): Promise<TranscoderSet | null> {
  try {
    const set = await loadTranscoderSet(dir, { offline: true });
    checkTranscoderSet(ctx.model, set);
    checkGraphHooks(ctx.model, set);
    return set;
  } catch (e) {
    ctx.omitted.push(
      `attribution graph: the transcoders ${dir} do not fit this model (${(e as Error).message})`,
    );
    return null;
  }
}
