/**
 * Attribution-graph figures (issue 30): the whole `attributeGraph` (the prompt's run, every backward batch,
 * every edge) on stories260k (a 32-token prompt) and on GPT-2 small's shape (12 random transcoders of 8,192
 * features, a 16-token prompt, 2 logit targets), wall and CPU time, the graph's size and the peak RSS.
 *
 * stories260k uses the bundled transcoder set (models/stories260k-transcoders) on the first 32 tokens of a
 * story, when the set is present; only without it (and always for GPT-2 small's shape) random transcoders
 * of the right shape whose JumpReLU thresholds are set on the prompt's own run so that about `l0` features
 * fire per position and layer (the graph's cost grows with the number of active features, so this is what
 * sets it).
 */
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { attributeGraph } from "../src/graphs/attribute-graph.ts";
import { nodeRanges } from "../src/graphs/attribution-graph.ts";
import { loadTranscoderSet, type Transcoder, type TranscoderSet } from "../src/graphs/transcoder-set.ts";
import type { HookedTransformer } from "../src/model/hooked-transformer.ts";
import { mulberry32 } from "../src/util/random.ts";
import { peakRssMb } from "./gpt2-small.ts";

/** Random transcoders whose thresholds let about `l0` features fire per position (after BOS) on `tokens`. */
function fittedRandomSet(
  model: HookedTransformer,
  tokens: readonly number[],
  a: { dTc: number; l0: number; seed: number },
): TranscoderSet {
  const { nLayers: L, dModel: D } = model.cfg;
  const rng = mulberry32(a.seed);
  const normal = () => Math.sqrt(-2 * Math.log(1 - rng())) * Math.cos(2 * Math.PI * rng());
  const names = Array.from({ length: L }, (_, l) => `blocks.${l}.ln2.hook_normalized`);
  const { cache } = model.runWithCache([[...tokens]], { namesFilter: names, logits: "none" });
  const P = tokens.length;
  const transcoders: Transcoder[] = [];
  for (let l = 0; l < L; l++) {
    const scale = 1 / Math.sqrt(D);
    const wEnc = Float32Array.from({ length: a.dTc * D }, () => normal() * scale);
    const wDec = Float32Array.from({ length: a.dTc * D }, () => normal() * scale * 0.1);
    const x = cache.get(names[l]).data;
    // one threshold for the layer: the (1 − l0 / d_tc) quantile of the pre-activations after BOS
    const pre: number[] = [];
    for (let p = 1; p < P; p++)
      for (let f = 0; f < a.dTc; f += 7) {
        let s = 0;
        for (let d = 0; d < D; d++) s += wEnc[f * D + d] * x[p * D + d];
        pre.push(s);
      }
    pre.sort((u, v) => v - u);
    const theta = pre[Math.floor((pre.length * a.l0) / a.dTc)];
    transcoders.push({
      layer: l,
      dModel: D,
      dTranscoder: a.dTc,
      wEnc,
      wDec,
      bEnc: new Float32Array(a.dTc),
      bDec: new Float32Array(D),
      threshold: new Float32Array(a.dTc).fill(theta),
      wSkip: null,
    });
  }
  return {
    featureInputHook: "ln2.hook_normalized",
    featureOutputHook: "hook_mlp_out",
    modelName: null,
    ids: transcoders.map((_, l) => `layer_${l}`),
    transcoders,
  };
}

interface GraphRun {
  wallS: number;
  cpuS: number;
  features: number;
  nodes: number;
}

async function timeGraph(
  model: HookedTransformer,
  tokens: readonly number[],
  set: TranscoderSet,
  targets: number[] | undefined,
): Promise<GraphRun> {
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  const { graph } = await attributeGraph(model, tokens, set, { targets });
  const wallS = (performance.now() - t0) / 1000;
  const c = process.cpuUsage(c0);
  return {
    wallS,
    cpuS: (c.user + c.system) / 1e6,
    features: graph.features.length,
    nodes: nodeRanges(graph).nNodes,
  };
}

function promptTokens(n: number, vocab: number, seed: number): number[] {
  const rng = mulberry32(seed);
  return Array.from({ length: n }, (_, i) => (i === 0 ? 1 : 2 + Math.floor(rng() * (vocab - 2))));
}

const BUNDLED_SET = fileURLToPath(new URL("../models/stories260k-transcoders", import.meta.url));
/** A story of the pronoun study's kind, longer than 32 tokens: the bench cuts it to 32. */
const STORY =
  "Once upon a time, there was a little girl named Lily. She liked to play in the park with her dog. One day, she found a big red ball under a tree.";

/** The bundled set on a 32-token story when it is present, else random transcoders on random tokens. */
async function storiesGraphInput(
  model: HookedTransformer,
): Promise<{ tokens: number[]; set: TranscoderSet; what: string }> {
  if (existsSync(BUNDLED_SET)) {
    const tokens = model.toTokens(STORY).slice(0, 32);
    if (tokens.length < 32) throw new Error(`the bench story has ${tokens.length} tokens, fewer than 32`);
    return { tokens, set: await loadTranscoderSet(BUNDLED_SET), what: "the bundled transcoders" };
  }
  const tokens = promptTokens(32, model.cfg.dVocab, 3);
  return {
    tokens,
    set: fittedRandomSet(model, tokens, { dTc: 512, l0: 16, seed: 11 }),
    what: "random transcoders d_tc 512, ~16 active per position (the bundled set is absent)",
  };
}

export async function benchGraph(
  gpt2: HookedTransformer,
  opts: { log: (line: string) => void; stories: HookedTransformer },
): Promise<Record<string, number>> {
  const figures: Record<string, number> = {};
  {
    const model = opts.stories;
    const { tokens, set, what } = await storiesGraphInput(model);
    await timeGraph(model, tokens, set, undefined); // warm-up
    const r = await timeGraph(model, tokens, set, undefined);
    figures.graph_stories260k_s = r.wallS;
    figures.graph_stories260k_cpu_s = r.cpuS;
    figures.graph_stories260k_features = r.features;
    opts.log(
      `graph stories260k (32 tokens, ${what}, top logits): ${r.wallS.toFixed(2)} s ` +
        `(CPU ${r.cpuS.toFixed(2)} s), ${r.features} features, ${r.nodes} nodes`,
    );
  }
  {
    const tokens = promptTokens(16, gpt2.cfg.dVocab, 4);
    opts.log("graph gpt2-small: building 12 random transcoders of 8,192 features ...");
    const set = fittedRandomSet(gpt2, tokens, { dTc: 8192, l0: 32, seed: 12 });
    const targets = [tokens[3], tokens[5]];
    const r = await timeGraph(gpt2, tokens, set, targets);
    const weightBytes = 124_439_808 * 4;
    figures.graph_gpt2_small_s = r.wallS;
    figures.graph_gpt2_small_cpu_s = r.cpuS;
    figures.graph_gpt2_small_features = r.features;
    figures.graph_gpt2_small_adjacency_mb = (r.nodes * r.nodes * 4) / 2 ** 20;
    figures.graph_gpt2_small_peak_rss_mb = peakRssMb();
    figures.graph_gpt2_small_weights_mb = weightBytes / 2 ** 20;
    opts.log(
      `graph gpt2-small shape (16 tokens, 2 targets, 12 x 8,192 features, ~32 active per position): ${r.wallS.toFixed(1)} s ` +
        `(CPU ${r.cpuS.toFixed(1)} s), ${r.features} features, adjacency ${figures.graph_gpt2_small_adjacency_mb.toFixed(0)} MB, ` +
        `peak RSS ${figures.graph_gpt2_small_peak_rss_mb.toFixed(0)} MB`,
    );
  }
  return figures;
}
