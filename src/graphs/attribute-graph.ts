/**
 * Builds a prompt's attribution graph: the direct, linear effect of every node on every other through the
 * local replacement model (Ameisen et al. 2025, "Circuit Tracing: Revealing Computational Graphs in Language
 * Models", transformer-circuits.pub; circuit-tracer's `attribute`). Phases:
 *
 * 0. Check the transcoder set fits the model (hooks, depth, d_model) before any work.
 * 1. One forward pass on the prompt (`replacementRun`): the active features (BOS zeroed), the error nodes,
 *    and the values the linearisation freezes — every attention pattern and every norm's scale (ln1, ln2,
 *    ln_final) — plus the last position's logits, from which the logit targets are chosen.
 * 2. Backward passes through the frozen model, a batch of targets per pass (one target per row). A target is
 *    a logit node's DEMEANED logit at the last position (W_U's column minus its mean over the vocabulary,
 *    seeded at ln_final's output) or a feature's pre-activation `W_enc[f] · input` without b_enc (seeded at
 *    the feature input hook of its layer and position). MLPs are constants, so the gradient flows only
 *    through the residual stream, the frozen norms, attention's value/output path with the pattern frozen,
 *    and a skip transcoder's W_skip (linear in its input, as circuit-tracer keeps it).
 * 3. Each layer's gradient at the MLP output, and the gradient at the embeddings, contracted with the
 *    sources' writes give one row of the adjacency: a feature `activation × (W_dec[f] · grad)` (a
 *    cross-layer transcoder's feature of layer l: the sum over l' ≥ l of `activation × (W_dec_l[f, l' − l] ·
 *    grad at mlp_out[l'])`, circuit-tracer's CLT attribution), an error
 *    `error · grad`, a token `W_E[token] · grad`. A feature of layer l reads the residual before MLP l, so
 *    only sources of earlier layers (and, through causal attention, earlier or equal positions) reach it;
 *    elsewhere the gradient is exactly zero.
 *
 * The model is linear in the sources under these freezes, so each row's edges plus the constant terms
 * (b_dec, biases, positional embeddings and the norms' offsets through the frozen model) sum to the target's
 * value on the prompt (the row identity, test/graphs/attribute-graph.test.ts).
 */
import { frozenValueBackward } from "../model/attention.ts";
import { blockOps, unembedOp } from "../model/block-ops.ts";
import type { HookedTransformer } from "../model/hooked-transformer.ts";
import { normBackward } from "../model/normalization.ts";
import { readoutDirection } from "../model/readout.ts";
import type { LinearOp } from "../tensor/kernels.ts";
import { Tensor } from "../tensor/tensor.ts";
import { checkpointYield } from "../util/checkpoint-yield.ts";
import { type AttributionGraph, nodeRanges } from "./attribution-graph.ts";
import { selectLogitTargets } from "./logit-targets.ts";
import { type ReplacementRun, replacementRun } from "./replacement-run.ts";
import { decoderLayers, decoderRow, type TranscoderSet } from "./transcoder-set.ts";

/** The feature input hooks the linearised backward knows how to seed (block-relative names). */
export const GRAPH_INPUT_HOOKS = ["ln2.hook_normalized", "hook_resid_mid"] as const;
/** The feature output hook the transcoders must replace. */
export const GRAPH_OUTPUT_HOOK = "hook_mlp_out";

export interface AttributeOptions {
  /** Logit targets (token ids, in this order); else the top logits until 0.95, at most 10. */
  targets?: readonly number[];
  /** Targets per backward pass (rows of a batch; default 32). */
  batchSize?: number;
  /** Called after each backward batch with (targets done, all targets). */
  onProgress?: (done: number, total: number) => void;
  /** Stops between batches (Ctrl-C). */
  signal?: AbortSignal;
}

export interface AttributedGraph {
  graph: AttributionGraph;
  /** The prompt's run the graph linearises (features, errors, cache of frozen values). */
  run: ReplacementRun;
}

/** Refuses a set the linearised backward cannot follow, naming the hook and the fix. */
export function checkGraphHooks(model: HookedTransformer, set: TranscoderSet): void {
  if (!(GRAPH_INPUT_HOOKS as readonly string[]).includes(set.featureInputHook)) {
    throw new Error(
      `graph: the transcoders read ${set.featureInputHook}, which the attribution backward does not support: ` +
        `feature_input_hook must be one of ${GRAPH_INPUT_HOOKS.join(", ")} (the MLP's input)`,
    );
  }
  if (set.featureOutputHook !== GRAPH_OUTPUT_HOOK) {
    throw new Error(
      `graph: the transcoders replace ${set.featureOutputHook}, but attribution graphs replace the MLP: ` +
        `feature_output_hook must be ${GRAPH_OUTPUT_HOOK}`,
    );
  }
  if (set.featureInputHook === "hook_resid_mid" && model.cfg.parallelResidual) {
    throw new Error(
      "graph: in a parallel-residual model the MLP reads hook_resid_pre through ln2, not hook_resid_mid: " +
        "use transcoders whose feature_input_hook is ln2.hook_normalized",
    );
  }
}

/** The hooks the frozen backward reads from the prompt's run. */
function frozenHookNames(model: HookedTransformer): string[] {
  const L = model.cfg.nLayers;
  const names = ["hook_embed", "ln_final.hook_scale", `blocks.${L - 1}.hook_resid_post`];
  for (let l = 0; l < L; l++) {
    for (const s of [
      "hook_resid_pre",
      "hook_resid_mid",
      "ln1.hook_scale",
      "ln2.hook_scale",
      "attn.hook_pattern",
    ])
      names.push(`blocks.${l}.${s}`);
  }
  return names;
}

/**
 * The demeaned readout direction of each of `tokens` ([d_model] each, float64): W_U[:, token] − W_U's mean
 * over the vocabulary. W_U is read back from the unembedding op for this call only and let go:
 * `model.weights.W_U` would keep a float32 copy beside the kernels' for the model's lifetime (d_model ×
 * d_vocab: 147 MB at GPT-2's vocabulary, most of what the graph held above its bound; docs/benchmarks.md).
 */
export function demeanedReadouts(model: HookedTransformer, tokens: readonly number[]): Float64Array[] {
  if (tokens.length === 0) return [];
  const { dModel: D, dVocab: V } = model.cfg;
  const unembedding = { W_U: new Tensor(unembedOp(model).weight(), [D, V]), b_U: model.weights.b_U };
  const WU = unembedding.W_U.data;
  const mean = new Float64Array(D);
  for (let d = 0; d < D; d++) {
    let s = 0;
    for (let v = 0; v < V; v++) s += WU[d * V + v];
    mean[d] = s / V;
  }
  return tokens.map((token) => {
    const dir = Float64Array.from(readoutDirection(unembedding, token).dir);
    for (let d = 0; d < D; d++) dir[d] -= mean[d];
    return dir;
  });
}

/** One target of a backward batch: where its gradient is seeded and which adjacency row it fills. */
interface Target {
  row: number;
  /** Its layer (nLayers for a logit: seeded after the last block). */
  layer: number;
  pos: number;
  /** [d_model]: the seed (W_enc[f], or the demeaned readout direction). */
  seed: ArrayLike<number>;
}

/** The attribution graph of `tokens` (a batch of one prompt), circuit-tracer's `attribute`. */
export async function attributeGraph(
  model: HookedTransformer,
  tokens: readonly number[],
  set: TranscoderSet,
  opts: AttributeOptions = {},
): Promise<AttributedGraph> {
  checkGraphHooks(model, set);
  const run = replacementRun(model, tokens, set, frozenHookNames(model));
  const { tokens: logitTokens, probabilities } = selectLogitTargets(run.lastLogits, {
    targets: opts.targets,
  });
  const graph: AttributionGraph = {
    nLayers: model.cfg.nLayers,
    inputTokens: [...tokens],
    features: run.features,
    logitTokens,
    logitProbabilities: probabilities,
    adjacency: new Float32Array(0),
  };
  const ranges = nodeRanges(graph);
  graph.adjacency = new Float32Array(ranges.nNodes * ranges.nNodes);
  const P = tokens.length;
  const D = model.cfg.dModel;
  // Logit rows first (circuit-tracer's phase 3), then features in matrix order, so a batch's features share
  // nearby layers and its backward starts no higher than it must.
  const targets: Target[] = demeanedReadouts(model, logitTokens).map((seed, i) => ({
    row: ranges.logitStart + i,
    layer: model.cfg.nLayers,
    pos: P - 1,
    seed,
  }));
  run.features.forEach((f, i) => {
    const tc = set.transcoders[f.layer];
    targets.push({
      row: i,
      layer: f.layer,
      pos: f.pos,
      seed: tc.wEnc.subarray(f.feature * D, (f.feature + 1) * D),
    });
  });
  const backward = new FrozenBackward(model, set, run, graph);
  const batchSize = Math.max(1, opts.batchSize ?? 32);
  try {
    for (let start = 0; start < targets.length; start += batchSize) {
      const batch = targets.slice(start, start + batchSize);
      backward.attributeBatch(batch);
      opts.onProgress?.(start + batch.length, targets.length);
      await checkpointYield(opts.signal, () => new Error("graph: stopped before the attribution finished"));
    }
  } finally {
    backward.dispose();
  }
  return { graph, run };
}

/**
 * The linearised backward of one prompt's run: patterns and norm scales frozen at the run's values, MLPs
 * constant. Rows of a batch are targets; every array is [rows, P, ...] over the prompt's P positions.
 */
class FrozenBackward {
  private readonly vOps: (LinearOp | null)[];
  /**
   * Per layer of MLP output, the writes into it of the active features (of that layer, or with a cross-layer
   * transcoder of every layer up to it): decoder rows scaled by their activation, grouped by source layer and
   * position.
   */
  private readonly writes: { layer: number; pos: number; index: number[]; rows: Float32Array }[][];

  constructor(
    private readonly model: HookedTransformer,
    private readonly set: TranscoderSet,
    private readonly run: ReplacementRun,
    private readonly graph: AttributionGraph,
  ) {
    const { nLayers: L, dModel: D } = model.cfg;
    this.vOps = new Array(L).fill(null);
    this.writes = Array.from({ length: L }, () => []);
    run.features.forEach((f, i) => {
      for (let into = f.layer; into < f.layer + decoderLayers(set, f.layer); into++) {
        const groups = this.writes[into];
        let g = groups[groups.length - 1];
        if (!g || g.layer !== f.layer || g.pos !== f.pos) {
          g = { layer: f.layer, pos: f.pos, index: [], rows: new Float32Array(0) };
          groups.push(g);
        }
        g.index.push(i);
      }
    });
    this.writes.forEach((groups, into) => {
      for (const g of groups) {
        g.rows = new Float32Array(g.index.length * D);
        g.index.forEach((i, k) => {
          const f = run.features[i];
          const row = decoderRow(set, f.layer, f.feature, into);
          for (let d = 0; d < D; d++) g.rows[k * D + d] = f.activation * row[d];
        });
      }
    });
  }

  /**
   * Layer l's value projection alone as a kernel op (with the pattern frozen only V carries gradient; its
   * `backward` is used), built from the V columns of the block's fused Q|K|V read back once:
   * `model.weights.blocks[l].W_V` reads the same product but keeps the last fused matrices it read (and their
   * per-head copies) beside the kernels' copy for the model's lifetime.
   */
  private vOp(l: number): LinearOp {
    let op = this.vOps[l];
    if (!op) {
      const { dModel: D, nHeads: H, nKvHeads: Hkv, dHead: dh } = this.model.cfg;
      const qkv = blockOps(this.model, l).qkv.weight(); // [D, (H + 2 Hkv) dh]: Q | K | V columns
      const width = (H + 2 * Hkv) * dh;
      const first = (H + Hkv) * dh;
      const wV = new Float32Array(D * Hkv * dh); // [D, Hkv dh]
      for (let d = 0; d < D; d++)
        wV.set(qkv.subarray(d * width + first, d * width + first + Hkv * dh), d * Hkv * dh);
      op = this.model.kernels.linear(wV, D, Hkv * dh);
      this.vOps[l] = op;
    }
    return op;
  }

  dispose(): void {
    for (const op of this.vOps) op?.dispose();
  }

  private act(name: string): Float32Array {
    return this.run.cache.get(name).data;
  }

  /** The first P positions of a cached [1, P_prompt, width] activation. */
  private firstRows(name: string, P: number, width: number): Float32Array {
    return this.act(name).subarray(0, P * width);
  }

  /** The frozen norm's backward, row by row of the batch (x and scale are the prompt's, shared by every row). */
  private frozenNorm(
    g: Float32Array,
    B: number,
    x: Float32Array,
    scale: Float32Array,
    which: "ln1" | "ln2" | "lnF",
    l: number,
    P: number,
  ): Float32Array {
    const { cfg, weights } = this.model;
    const D = cfg.dModel;
    const ln = which === "lnF" ? weights.lnFinal : weights.blocks[l][which];
    const out = new Float32Array(g.length);
    for (let b = 0; b < B; b++) {
      const rows = g.subarray(b * P * D, (b + 1) * P * D);
      const { gInput } = normBackward({
        kind: cfg.normalization,
        x,
        scale,
        ln,
        gNormalized: rows,
        rows: P,
        D,
        frozenScale: true,
      });
      out.set(gInput, b * P * D);
    }
    return out;
  }

  /** Fills the adjacency rows of `batch` with one backward pass. */
  attributeBatch(batch: readonly Target[]): void {
    const { cfg } = this.model;
    const { nLayers: L, dModel: D, nHeads: H, nKvHeads: Hkv, dHead: dh } = cfg;
    // Causal attention: positions after the batch's last target position get no gradient, so the pass
    // runs on the first P positions only (features in matrix order share a position, halving the work).
    const P = Math.max(...batch.map((t) => t.pos)) + 1;
    const B = batch.length;
    const rows = B * P;
    const top = Math.max(...batch.map((t) => t.layer));
    let g: Float32Array = new Float32Array(rows * D); // d/d resid_post of the current layer
    if (top === L) {
      const gNormF = new Float32Array(rows * D);
      batch.forEach((t, b) => {
        if (t.layer === L) for (let d = 0; d < D; d++) gNormF[(b * P + t.pos) * D + d] = t.seed[d];
      });
      g = this.frozenNorm(
        gNormF,
        B,
        this.firstRows(`blocks.${L - 1}.hook_resid_post`, P, D),
        this.firstRows("ln_final.hook_scale", P, 1),
        "lnF",
        L,
        P,
      );
    }
    const inputIsNormalized = this.set.featureInputHook === "ln2.hook_normalized";
    for (let l = Math.min(top, L - 1); l >= 0; l--) {
      const name = (s: string) => `blocks.${l}.${s}`;
      this.recordMlpSources(batch, l, g, P);
      // d/d the feature input hook: the skip path, and the seeds of this layer's feature targets.
      const gIn = this.skipBackward(l, g, rows);
      batch.forEach((t, b) => {
        if (t.layer !== l) return;
        const o = (b * P + t.pos) * D;
        for (let d = 0; d < D; d++) gIn[o + d] += t.seed[d];
      });
      let gLn2: Float32Array | null = null;
      if (inputIsNormalized) {
        const x = this.firstRows(name(cfg.parallelResidual ? "hook_resid_pre" : "hook_resid_mid"), P, D);
        gLn2 = this.frozenNorm(gIn, B, x, this.firstRows(name("ln2.hook_scale"), P, 1), "ln2", l, P);
      }
      const gMid = new Float32Array(rows * D);
      for (let i = 0; i < gMid.length; i++) {
        gMid[i] = g[i] + (inputIsNormalized ? (cfg.parallelResidual ? 0 : gLn2![i]) : gIn[i]);
      }
      // Attention with its pattern frozen: only the values carry gradient back.
      const ops = blockOps(this.model, l);
      const gZ = ops.o.backward(gMid, rows);
      const pattern = patternBlock(this.act(name("attn.hook_pattern")), H, this.graph.inputTokens.length, P);
      const gV = frozenValueBackward(this.model.kernels, { pattern, gZ, B, P, H, Hkv, dh });
      const gNorm1 = this.vOp(l).backward(gV, rows);
      const gLn1 = this.frozenNorm(
        gNorm1,
        B,
        this.firstRows(name("hook_resid_pre"), P, D),
        this.firstRows(name("ln1.hook_scale"), P, 1),
        "ln1",
        l,
        P,
      );
      const next = new Float32Array(rows * D);
      for (let i = 0; i < next.length; i++) {
        next[i] = gMid[i] + gLn1[i] + (cfg.parallelResidual && gLn2 ? gLn2[i] : 0);
      }
      g = next;
    }
    this.recordTokenSources(batch, g, P);
  }

  /** W_skip^T · d/d mlp_out per row (d/d the transcoder's input through its skip term); zeros without one. */
  private skipBackward(l: number, gOut: Float32Array, rows: number): Float32Array {
    const D = this.model.cfg.dModel;
    const gIn = new Float32Array(rows * D);
    const wSkip = this.set.transcoders[l].wSkip;
    if (!wSkip) return gIn;
    for (let r = 0; r < rows; r++) {
      const o = r * D;
      for (let out = 0; out < D; out++) {
        const gy = gOut[o + out];
        if (gy === 0) continue;
        for (let i = 0; i < D; i++) gIn[o + i] += wSkip[out * D + i] * gy;
      }
    }
    return gIn;
  }

  /** Edges from layer l's features and error nodes, given d/d mlp_out[l] ([B, P, D]). */
  private recordMlpSources(batch: readonly Target[], l: number, gOut: Float32Array, P: number): void {
    const { dModel: D } = this.model.cfg;
    const nPos = this.graph.inputTokens.length;
    const B = batch.length;
    const n = nodeRanges(this.graph).nNodes;
    const A = this.graph.adjacency;
    for (const group of this.writes[l]) {
      if (group.pos >= P) continue; // no gradient reaches it
      // [B, D] rows of the gradient at this position, times the group's writes [k, D] transposed.
      const gp = new Float32Array(B * D);
      for (let b = 0; b < B; b++)
        gp.set(gOut.subarray((b * P + group.pos) * D, (b * P + group.pos + 1) * D), b * D);
      const k = group.index.length;
      const e = this.model.kernels.bmm(gp, group.rows, 1, B, D, k, true);
      batch.forEach((t, b) => {
        // += : a cross-layer feature's edge sums its writes into every layer it reaches.
        for (let j = 0; j < k; j++) A[t.row * n + group.index[j]] += e[b * k + j];
      });
    }
    const errorStart = nodeRanges(this.graph).errorStart;
    const errors = this.run.errors;
    batch.forEach((t, b) => {
      for (let p = 0; p < P; p++) {
        let s = 0;
        const go = (b * P + p) * D;
        const eo = (l * nPos + p) * D;
        for (let d = 0; d < D; d++) s += errors[eo + d] * gOut[go + d];
        A[t.row * n + errorStart + l * nPos + p] = s;
      }
    });
  }

  /** Edges from the token embeddings (W_E[token], circuit-tracer's token vectors), given d/d hook_embed. */
  private recordTokenSources(batch: readonly Target[], gEmbed: Float32Array, P: number): void {
    const D = this.model.cfg.dModel;
    const { nNodes: n, tokenStart } = nodeRanges(this.graph);
    const embed = this.act("hook_embed");
    batch.forEach((t, b) => {
      for (let p = 0; p < P; p++) {
        let s = 0;
        for (let d = 0; d < D; d++) s += embed[p * D + d] * gEmbed[(b * P + p) * D + d];
        this.graph.adjacency[t.row * n + tokenStart + p] = s;
      }
    });
  }
}

/** The first P queries and keys of a pattern [H, nPos, nPos]: [H, P, P] (the prompt's own array when P = nPos). */
function patternBlock(pattern: Float32Array, H: number, nPos: number, P: number): Float32Array {
  if (P === nPos) return pattern;
  const out = new Float32Array(H * P * P);
  for (let h = 0; h < H; h++)
    for (let i = 0; i < P; i++)
      out.set(pattern.subarray((h * nPos + i) * nPos, (h * nPos + i) * nPos + P), (h * P + i) * P);
  return out;
}
