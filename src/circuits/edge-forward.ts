/**
 * The edge-masked forward pass (interchange intervention over edges) and its backward pass.
 *
 * Every child input is the reference run's residual at that point plus, for each parent, `mask · (parent's
 * output in this run − parent's output in the reference run)`. With the corrupted run as the reference, a
 * mask of 1 keeps an edge (the clean value flows) and 0 removes it (the corrupted value flows); fractions
 * interpolate. Each child input is normalised on its own, so each head's q, k and v come from its own
 * normalised input. Biases (b_O) stay in the residual: they are part of the reference residual and of no
 * node. With the "bias reference" (no parent outputs, residual = biases) and an all-ones mask this is the
 * plain forward pass, which is how the corrupted run itself is computed.
 *
 * Layouts: a run of B prompts of P positions has N = B·P·D values per node; node outputs live in one
 * [nNodes, N] buffer, a layer's 3H head inputs in one [3H, N] buffer, per-head q/k/v in [H, B·P, dh].
 */

import {
  type BackwardCopies,
  releasesBackwardCopies,
  runInLockstep,
  type StagedBackward,
} from "../gradients/backward-copies.ts";
import { attentionBackward, headScores, softmaxRows } from "../model/attention.ts";
import { blockOps, opsOfBlock } from "../model/block-ops.ts";
import { headsFirst, positionsFirst } from "../model/layouts.ts";
import type { MlpSaved } from "../model/mlp.ts";
import { addReadoutGradient, readoutSlope, readoutValue } from "../model/readout.ts";
import type { ArchOps, MetricTerm, MlpPostSaved, QKNormSaved } from "./arch-ops.ts";
import type { ChildInput, EdgeGraph } from "./graph.ts";

/** The prompts of one run: B prompts of P tokens, with each prompt's logit difference as metric terms. */
export interface RunShape {
  B: number;
  P: number;
  /** [B][terms]: logit(answer) − logit(wrong) of each prompt (ArchOps.logitDiffTerms). */
  metric: MetricTerm[][];
}

/** The run whose values removed edges carry: node outputs [nNodes, N] and the residual at each read point. */
export interface Reference {
  outs: Float32Array;
  /** [2·nLayers + 1] residuals of N values: before layer L's heads (2L), its MLP (2L+1), the unembedding (last). */
  resid: Float32Array[];
}

export interface EdgeRunArgs {
  shape: RunShape;
  /** [N]: the `input` node's output in this run. */
  input: Float32Array;
  /** [nEdges]: 1 keeps an edge, 0 removes it. */
  mask: Float32Array;
  ref: Reference;
  /** Compute layers from here on, taking earlier nodes' differences from `prefix` ([nNodes, N]). */
  startLayer?: number;
  prefix?: Float32Array;
  /** Keep what the backward pass needs. */
  record?: boolean;
}

interface LayerSaved {
  /** [3H, N] head inputs, or [N] when every head input is the same (all of them get the same mask row). */
  x: Float32Array;
  scale: Float32Array;
  qkv: Float32Array; // [3H, B·P, dh], q and k after any QK-norm and rotation
  /** With QK-norm, q and k before it and its scales (ArchOps.positionQK), else null. */
  qkNorm: QKNormSaved | null;
  pattern: Float32Array; // [H, B, P, P]
  /** [H, B, P, P]: the scores after the transform, kept only when it soft-caps (its derivative reads them). */
  scores: Float32Array | null;
  /** With post-norms, the heads' results (+ b_O / H) [H, N] and ln1_post's scale of their sum, else null. */
  pieces: Float32Array | null;
  postScale: Float32Array | null;
  xm: Float32Array; // [N]
  scaleM: Float32Array;
  mlp: MlpSaved & MlpPostSaved;
}

export interface EdgeRun {
  /** [nNodes, N]: each node's output in this run minus its output in the reference run. */
  diffs: Float32Array;
  /** logit(answer) − logit(wrong) at the final position, per prompt. */
  perPrompt: Float64Array;
  /** What the backward pass needs; its layers are let go (null) as the backward pass passes them. */
  saved: {
    layers: (LayerSaved | null)[];
    xf: Float32Array;
    /** [B, D]: the final norm's output (a capped readout's slope reads it). */
    yf: Float32Array;
    scaleF: Float32Array;
  } | null;
}

/** What the backward pass reads of a recorded run. */
export type RecordedRun = Pick<EdgeRun, "saved">;

export class EdgeForward {
  constructor(
    readonly graph: EdgeGraph,
    readonly arch: ArchOps,
  ) {}

  /** The reference of the plain forward pass: no parent outputs, residual = the biases alone. */
  biasReference(shape: RunShape): Reference {
    const { arch, graph } = this;
    const N = shape.B * shape.P * arch.D;
    const resid: Float32Array[] = [];
    const bias = new Float32Array(arch.D);
    const broadcast = () => {
      const r = new Float32Array(N);
      for (let o = 0; o < N; o += arch.D) r.set(bias, o);
      return r;
    };
    for (let l = 0; l < arch.nLayers; l++) {
      resid.push(broadcast());
      // A parallel block's MLP reads the residual before this layer's attention (and its b_O).
      if (graph.shape.parallel) resid.push(broadcast());
      const bO = arch.residualBias(l);
      for (let d = 0; d < arch.D; d++) bias[d] += bO[d];
      if (!graph.shape.parallel) resid.push(broadcast());
    }
    resid.push(broadcast());
    return { outs: new Float32Array(graph.nodes.length * N), resid };
  }

  /** A run's outputs as the reference: its node outputs and residuals (biases + earlier outputs). */
  referenceFrom(shape: RunShape, outs: Float32Array): Reference {
    const { graph, arch } = this;
    const N = shape.B * shape.P * arch.D;
    const biasRef = this.biasReference(shape);
    const resid = biasRef.resid.map((r, point) => {
      const nParents =
        point === 2 * arch.nLayers
          ? graph.nodes.length
          : point % 2 === 0
            ? graph.headNodeIndex(point / 2, 0)
            : graph.mlpParents((point - 1) / 2);
      for (let p = 0; p < nParents; p++) {
        const o = p * N;
        for (let i = 0; i < N; i++) r[i] += outs[o + i];
      }
      return r;
    });
    return { outs, resid };
  }

  run(a: EdgeRunArgs): EdgeRun {
    const { graph, arch } = this;
    const { kernels, D, H, dh } = arch;
    const { B, P } = a.shape;
    const rows = B * P;
    const N = rows * D;
    const C = 3 * H;
    const nNodes = graph.nodes.length;
    const start = a.startLayer ?? 0;
    const diffs = new Float32Array(nNodes * N);
    if (start > 0) {
      if (!a.prefix) throw new Error("startLayer > 0 needs the prefix run's node differences");
      diffs.set(a.prefix.subarray(0, graph.headNodeIndex(start, 0) * N));
    } else {
      for (let i = 0; i < N; i++) diffs[i] = a.input[i] - a.ref.outs[i];
    }
    const layers: LayerSaved[] = [];
    const setDiff = (node: number, out: Float32Array, from = 0) => {
      const o = node * N;
      for (let i = 0; i < N; i++) diffs[o + i] = out[from + i] - a.ref.outs[o + i];
    };
    for (let l = start; l < arch.nLayers; l++) {
      // Heads: one input per (q|k|v, head), each normalised and projected on its own.
      const w = arch.headWeights(l);
      const child = graph.children[graph.layerChildIndex(l)];
      const x = this.mix({ mask: a.mask, first: child, count: C, diffs, resid: a.ref.resid[2 * l] });
      const { y, scale } = arch.norm({ layer: l, which: "ln1" }, x, C * rows);
      const qkv = kernels.bmm(y, w.W, C, rows, D, dh, false);
      for (let c = 0; c < C; c++)
        for (let r = 0; r < rows; r++)
          for (let e = 0; e < dh; e++) qkv[(c * rows + r) * dh + e] += w.b[c * dh + e];
      const HN = H * rows * dh;
      const qkNorm = arch.positionQK(l, qkv.subarray(0, 2 * HN), B, P);
      const q = qkv.subarray(0, HN);
      const k = qkv.subarray(HN, 2 * HN);
      const v = qkv.subarray(2 * HN, 3 * HN);
      // Heads-first [H·B, P, P]: each row's query is at position (row mod P), no earlier positions.
      const mask = { queries: P, firstQuery: 0, window: arch.window(l) };
      const transform = arch.scoreTransform;
      const scores = headScores(kernels, q, k, { n: H * B, queries: P, keys: P, dHead: dh, mask, transform });
      // A soft-capped score's derivative reads the score: kept apart from the pattern when recording.
      const keepScores = a.record === true && transform.softCap !== null;
      const pattern = softmaxRows(scores, {
        rows: H * B * P,
        keys: P,
        mask,
        into: keepScores ? undefined : scores,
      });
      const z = kernels.bmm(pattern, v, H * B, P, P, dh, false);
      const results = kernels.bmm(z, w.W_O, H, rows, dh, D, false); // [H, N]
      const heads = arch.headWrites(l, results, rows);
      for (let h = 0; h < H; h++) setDiff(graph.headNodeIndex(l, h), heads.writes, h * N);

      // MLP
      const mChild = graph.children[graph.layerChildIndex(l) + C];
      const xm = this.mix({ mask: a.mask, first: mChild, count: 1, diffs, resid: a.ref.resid[2 * l + 1] });
      const nm = arch.norm({ layer: l, which: "ln2" }, xm, rows);
      const mlp = arch.mlp(l, nm.y, rows);
      setDiff(graph.mlpNodeIndex(l), mlp.out);
      if (a.record) {
        // With every edge kept (IG's runs) all head inputs are the same residual: kept once.
        const one = sameRows(x, N) ? x.slice(0, N) : x;
        layers.push({
          x: one,
          scale,
          qkv,
          qkNorm,
          pattern,
          scores: keepScores ? scores : null,
          pieces: heads.pieces,
          postScale: heads.scale,
          xm,
          scaleM: nm.scale,
          mlp: mlp.saved,
        });
      }
    }

    // Logits: only each prompt's final position is read.
    const fChild = graph.children[graph.logitsChildIndex];
    const xf = new Float32Array(B * D);
    const residF = a.ref.resid[2 * arch.nLayers];
    for (let b = 0; b < B; b++) {
      const o = ((b + 1) * P - 1) * D;
      for (let d = 0; d < D; d++) xf[b * D + d] = residF[o + d];
      for (let p = 0; p < fChild.nParents; p++) {
        const m = a.mask[fChild.edgeOffset + p];
        if (m === 0) continue;
        const po = p * N + o;
        for (let d = 0; d < D; d++) xf[b * D + d] += m * diffs[po + d];
      }
    }
    const nf = arch.norm({ layer: null, which: "final" }, xf, B);
    const perPrompt = new Float64Array(B);
    for (let b = 0; b < B; b++)
      for (const t of a.shape.metric[b]) perPrompt[b] += t.sign * readoutValue(t, nf.y, b * D);
    const saved = a.record ? { layers, xf, yf: nf.y, scaleF: nf.scale } : null;
    return { diffs, perPrompt, saved };
  }

  /** [count, N]: the reference residual plus the mask-weighted parent differences, per child input. */
  private mix(a: {
    mask: Float32Array;
    /** The first of `count` consecutive child inputs with the same parents. */
    first: ChildInput;
    count: number;
    diffs: Float32Array;
    /** [N]: the reference residual they all read. */
    resid: Float32Array;
  }): Float32Array {
    const { mask, count, diffs, resid } = a;
    const { edgeOffset, nParents } = a.first;
    const N = resid.length;
    const m = mask.subarray(edgeOffset, edgeOffset + count * nParents);
    const x = this.arch.kernels.bmm(m, diffs.subarray(0, nParents * N), 1, count, nParents, N, false);
    for (let c = 0; c < count; c++) {
      const o = c * N;
      for (let i = 0; i < N; i++) x[o + i] += resid[i];
    }
    return x;
  }

  /**
   * d (mean over prompts of the logit difference) / d (every child input) for a recorded run: per layer a
   * [3H, N] block for the head inputs and [N] for the MLP, then [B, D] for the logits (final positions).
   * The run's recorded layers are let go as the pass goes down (it can be run backward once).
   */
  backward(a: EdgeRunArgs, run: RecordedRun, copies: BackwardCopies = "auto"): ChildGrads {
    return this.backwardSum([{ args: a, run }], { copies, into: null });
  }

  /**
   * The sum of several recorded runs' gradients (same shape), added into `into` (or a new sum). The passes
   * go down together, layer by layer, so that each layer's backward copies of the weights are built once
   * for all of them (and released after it when memory is tight); each adds its layer's gradient to the
   * sum and lets its recorded layer go, so they hold one sum, not one gradient each.
   */
  backwardSum(
    passes: readonly { args: EdgeRunArgs; run: RecordedRun }[],
    o: { copies?: BackwardCopies; into: ChildGrads | null },
  ): ChildGrads {
    const release = releasesBackwardCopies(this.arch.model, o.copies ?? "auto");
    const sum = o.into ?? this.zeroGrads(passes[0].args.shape);
    runInLockstep(
      passes.map((p) => this.stagedBackward(p.args, p.run, sum)),
      { release },
    );
    return sum;
  }

  /**
   * Bytes a recorded pass holds until its backward pass is done: what the run kept, and the gradient with
   * respect to every node's output the backward pass builds.
   */
  passBytes(run: RecordedRun, { B, P }: RunShape): number {
    return savedBytes(run) + 4 * this.graph.nodes.length * B * P * this.arch.D;
  }

  private zeroGrads({ B, P }: RunShape): ChildGrads {
    const N = B * P * this.arch.D;
    const L = this.arch.nLayers;
    return {
      heads: Array.from({ length: L }, () => new Float32Array(3 * this.arch.H * N)),
      mlp: Array.from({ length: L }, () => new Float32Array(N)),
      logits: new Float32Array(B * this.arch.D),
    };
  }

  /** The backward pass, yielding each layer's ops once done with them (see gradients/backward-copies.ts). */
  private *stagedBackward(a: EdgeRunArgs, run: RecordedRun, sum: ChildGrads): StagedBackward<void> {
    const { graph, arch } = this;
    const { kernels, D, H, dh } = arch;
    const saved = run.saved;
    if (!saved || (a.startLayer ?? 0) !== 0) throw new Error("backward needs a recorded run from layer 0");
    if (saved.layers.some((s) => !s)) throw new Error("this recorded run was run backward already");
    const { B, P } = a.shape;
    const rows = B * P;
    const N = rows * D;
    const C = 3 * H;
    const gOut = new Float32Array(graph.nodes.length * N); // d/d each node's output
    /** d/d each parent's output += mask · d/d (child input), for `count` child inputs from `first` on. */
    const spread = (gx: Float32Array, first: ChildInput, count: number) => {
      const { edgeOffset, nParents } = first;
      const mT = new Float32Array(nParents * count);
      for (let c = 0; c < count; c++)
        for (let p = 0; p < nParents; p++) mT[p * count + c] = a.mask[edgeOffset + c * nParents + p];
      const g = kernels.bmm(mT, gx, 1, nParents, count, N, false);
      for (let i = 0; i < g.length; i++) gOut[i] += g[i];
    };
    const addTo = (total: Float32Array, g: Float32Array) => {
      for (let i = 0; i < g.length; i++) total[i] += g[i];
    };

    const gyF = new Float32Array(B * D); // d (mean over prompts) / d each prompt's readout input
    for (let b = 0; b < B; b++)
      for (const t of a.shape.metric[b])
        addReadoutGradient(t, (t.sign * readoutSlope(t, saved.yf, b * D)) / B, gyF, b * D);
    const gLogits = arch.normBackward({ layer: null, which: "final" }, saved.xf, saved.scaleF, gyF, B);
    addTo(sum.logits, gLogits);
    const fChild = graph.children[graph.logitsChildIndex];
    for (let p = 0; p < fChild.nParents; p++) {
      const m = a.mask[fChild.edgeOffset + p];
      for (let b = 0; b < B; b++) {
        const o = p * N + ((b + 1) * P - 1) * D;
        for (let d = 0; d < D; d++) gOut[o + d] += m * gLogits[b * D + d];
      }
    }

    for (let l = arch.nLayers - 1; l >= 0; l--) {
      const s = saved.layers[l] as LayerSaved;
      saved.layers[l] = null; // this pass no longer needs it
      const w = arch.headWeights(l);
      const mNode = graph.mlpNodeIndex(l);
      const gYm = arch.mlpBackward(l, s.mlp, gOut.slice(mNode * N, (mNode + 1) * N), rows);
      const gXm = arch.normBackward({ layer: l, which: "ln2" }, s.xm, s.scaleM, gYm, rows);
      addTo(sum.mlp[l], gXm);
      const mChild = graph.children[graph.layerChildIndex(l) + C];
      spread(gXm, mChild, 1);

      const h0 = graph.headNodeIndex(l, 0);
      const gResults = arch.headWritesBackward(
        l,
        { pieces: s.pieces, scale: s.postScale },
        gOut.subarray(h0 * N, (h0 + H) * N),
        rows,
      );
      const gZ = kernels.bmm(gResults, w.W_O, H, rows, D, dh, true);
      const HN = H * rows * dh;
      const toBPH = (t: Float32Array) => positionsFirst(t, 1, rows, H, dh);
      // Every head has its own (ungrouped) key and value here, so Hkv = H.
      const att = attentionBackward({
        q: toBPH(s.qkv.subarray(0, HN)),
        k: toBPH(s.qkv.subarray(HN, 2 * HN)),
        v: toBPH(s.qkv.subarray(2 * HN)),
        pattern: positionsFirst(s.pattern, 1, B, H, P * P),
        gZ: toBPH(gZ),
        B,
        P,
        H,
        dh,
        transform: arch.scoreTransform,
        scores: s.scores ? positionsFirst(s.scores, 1, B, H, P * P) : undefined,
      });
      const gQkv = new Float32Array(3 * HN);
      for (const [i, g] of [att.gQ, att.gK, att.gV].entries())
        gQkv.set(headsFirst(g, 1, rows, H, dh), i * HN);
      arch.positionQKBackward(l, s.qkNorm, gQkv.subarray(0, 2 * HN), B, P);
      const gY = kernels.bmm(gQkv, w.W, C, rows, dh, D, true);
      const x = s.x.length === N ? repeatRows(s.x, C) : s.x;
      const gX = arch.normBackward({ layer: l, which: "ln1" }, x, s.scale, gY, C * rows);
      addTo(sum.heads[l], gX);
      const child = graph.children[graph.layerChildIndex(l)];
      spread(gX, child, C);
      yield opsOfBlock(blockOps(arch.model, l));
    }
  }
}

/** Whether every row of `width` values of `a` is the first, bit for bit. */
function sameRows(a: Float32Array, width: number): boolean {
  for (let o = width; o < a.length; o += width)
    for (let i = 0; i < width; i++) if (!Object.is(a[o + i], a[i])) return false;
  return true;
}

/** `row` repeated `count` times. */
function repeatRows(row: Float32Array, count: number): Float32Array {
  const out = new Float32Array(count * row.length);
  for (let c = 0; c < count; c++) out.set(row, c * row.length);
  return out;
}

/** Bytes a recorded run keeps for its backward pass. */
export function savedBytes(run: RecordedRun): number {
  if (!run.saved) return 0;
  const { layers, xf, yf, scaleF } = run.saved;
  let bytes = xf.byteLength + yf.byteLength + scaleF.byteLength;
  for (const l of layers) {
    if (l === null) continue;
    const { mlp } = l;
    for (const a of [
      l.x,
      l.scale,
      l.qkv,
      l.qkNorm?.raw,
      l.qkNorm?.scale,
      l.pattern,
      l.scores,
      l.pieces,
      l.postScale,
      l.xm,
      l.scaleM,
    ])
      bytes += a?.byteLength ?? 0;
    for (const a of [mlp.pre, mlp.up, mlp.raw, mlp.postScale]) bytes += a?.byteLength ?? 0;
  }
  return bytes;
}

export interface ChildGrads {
  /** Per layer [3H, N]: q inputs of every head, then k, then v. */
  heads: Float32Array[];
  /** Per layer [N]. */
  mlp: Float32Array[];
  /** [B, D] at each prompt's final position. */
  logits: Float32Array;
}
