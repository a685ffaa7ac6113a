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
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { attributeGraph } from "../src/graphs/attribute-graph.ts";
import { nodeRanges } from "../src/graphs/attribution-graph.ts";
import {
  loadTranscoderSet,
  type Transcoder,
  type TranscoderSet,
  writeTranscoderSet,
} from "../src/graphs/transcoder-set.ts";
import type { HookedTransformer } from "../src/model/hooked-transformer.ts";
import { mulberry32 } from "../src/util/random.ts";
import { makeRandomCheckpoint } from "../src/weights/checkpoint.ts";
import { GPT2_SMALL_CONFIG } from "./gpt2-small.ts";
import { type GraphMemorySpec, measureGraphMemory } from "./graph-memory.ts";

const MB = 2 ** 20;

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
  Object.assign(figures, await benchGpt2GraphMemory(gpt2, { log: opts.log, promptLength: 16 }));
  return figures;
}

/** float32 bytes of GPT-2 small's parameters (the checkpoint's tensors). */
const GPT2_SMALL_WEIGHT_BYTES = 124_439_808 * 4;

/**
 * The GPT-2-small-shaped graph (12 random transcoders of 8,192 features, about 32 active per position and
 * layer, 2 logit targets) built in a fresh child from a checkpoint and a transcoder set on disk, as the
 * `graph` command loads them, so its peak RSS is the graph's own. `gpt2` must be `randomGpt2Small()`'s model
 * (seed 1): the child loads the same weights from a checkpoint of that seed, and the thresholds are fitted on
 * `gpt2`'s run. Keys are `graph_gpt2_small_*` for a 16-token prompt, else `graph_gpt2_small_{n}tok_*`.
 */
export async function benchGpt2GraphMemory(
  gpt2: HookedTransformer,
  opts: { log: (line: string) => void; promptLength: number },
): Promise<Record<string, number>> {
  const n = opts.promptLength;
  const tokens = promptTokens(n, gpt2.cfg.dVocab, 4);
  const targets = [tokens[3], tokens[5]];
  const dir = mkdtempSync(join(tmpdir(), "circuitscope-bench-graph-"));
  try {
    opts.log(
      `graph gpt2-small (${n} tokens): writing the checkpoint and 12 random transcoders of 8,192 features ...`,
    );
    const set = fittedRandomSet(gpt2, tokens, { dTc: 8192, l0: 32, seed: 12 });
    const transcoderBytes = set.transcoders.reduce(
      (s, tc) =>
        s +
        4 * (tc.wEnc.length + tc.wDec.length + tc.bEnc.length + tc.bDec.length + (tc.threshold?.length ?? 0)),
      0,
    );
    await writeTranscoderSet(join(dir, "transcoders"), set, { command: "bench" });
    makeRandomCheckpoint(join(dir, "model"), GPT2_SMALL_CONFIG, { seed: 1 });
    const spec: GraphMemorySpec = {
      modelDir: join(dir, "model"),
      setDir: join(dir, "transcoders"),
      tokens,
      targets,
      backend: gpt2.kernels.name,
    };
    writeFileSync(join(dir, "spec.json"), JSON.stringify(spec));
    const m = measureGraphMemory(join(dir, "spec.json"));
    const adjacencyMb = (m.nodes * m.nodes * 4) / MB;
    const weightsMb = GPT2_SMALL_WEIGHT_BYTES / MB;
    const transcodersMb = transcoderBytes / MB;
    const key = n === 16 ? "graph_gpt2_small" : `graph_gpt2_small_${n}tok`;
    const figures: Record<string, number> = {
      [`${key}_s`]: m.wallS,
      [`${key}_cpu_s`]: m.cpuS,
      [`${key}_features`]: m.features,
      [`${key}_adjacency_mb`]: adjacencyMb,
      [`${key}_weights_mb`]: weightsMb,
      [`${key}_transcoders_mb`]: transcodersMb,
      [`${key}_baseline_rss_mb`]: m.baselineMb,
      [`${key}_load_peak_rss_mb`]: m.peakAfterTranscodersMb,
      [`${key}_peak_rss_mb`]: m.peakMb,
      [`${key}_rss_bound_mb`]: (weightsMb + transcodersMb) * 1.5 + adjacencyMb,
    };
    opts.log(
      `graph gpt2-small shape (fresh child, ${n} tokens, 2 targets, 12 x 8,192 features, ~32 active per position): ` +
        `${m.wallS.toFixed(1)} s (CPU ${m.cpuS.toFixed(1)} s), ${m.features} features, adjacency ${adjacencyMb.toFixed(0)} MB, ` +
        `peak RSS ${m.peakMb.toFixed(0)} MB (baseline ${m.baselineMb.toFixed(0)}, after model ${m.peakAfterModelMb.toFixed(0)}, ` +
        `after transcoders ${m.peakAfterTranscodersMb.toFixed(0)}) against the bound ${figures[`${key}_rss_bound_mb`].toFixed(0)} MB`,
    );
    return figures;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

// node --import tsx bench/graph.ts --lengths 8,16,32: the GPT-2-small graph's figures at several prompt lengths.
if (import.meta.url === `file://${process.argv[1]}` && process.argv[2] === "--lengths") {
  const { randomGpt2Small } = await import("./gpt2-small.ts");
  const gpt2 = randomGpt2Small();
  const figures: Record<string, number> = {};
  for (const n of process.argv[3].split(",").map(Number))
    Object.assign(
      figures,
      await benchGpt2GraphMemory(gpt2, { log: (l) => process.stderr.write(`${l}\n`), promptLength: n }),
    );
  gpt2.dispose();
  process.stdout.write(`${JSON.stringify(figures, null, 1)}\n`);
}
