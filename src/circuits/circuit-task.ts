/**
 * A circuit-finding task: prompt pairs (clean, corrupted, answer, wrong), grouped by token length so each
 * group runs as one batch. Each group keeps its corrupted run (the reference, read by every run); the clean
 * run's node differences are recomputed where they are read (one forward pass per group per call) rather
 * than kept, as they are as large as the reference (nodes × tokens × d_model per pair).
 * The metric is logit(answer) − logit(wrong) at the final position (soft-capped logits where the model caps
 * them), mean over all pairs.
 */
import { type BackwardCopies, passesTogether, releasesBackwardCopies } from "../gradients/backward-copies.ts";
import type { HookedTransformer } from "../model/hooked-transformer.ts";
import { patchAborted } from "../patching/types.ts";
import { checkpointYield } from "../util/checkpoint-yield.ts";
import { ArchOps } from "./arch-ops.ts";
import { type ChildGrads, EdgeForward, type Reference, type RunShape } from "./edge-forward.ts";
import { EdgeGraph } from "./graph.ts";

export interface CircuitPairs {
  clean: readonly (readonly number[])[];
  corrupted: readonly (readonly number[])[];
  /** One token per pair. */
  answer: readonly number[];
  wrong: readonly number[];
}

interface Group {
  shape: RunShape;
  /** Share of all pairs in this group: the weight of its mean in the overall metric. */
  weight: number;
  cleanInput: Float32Array;
  corruptedInput: Float32Array;
  ref: Reference;
}

export type Progress = (done: number, total: number) => void;

export interface CircuitTaskOptions {
  /**
   * Most float32 values one batch's recorded run may hold (node outputs and every layer's head inputs);
   * pairs of one length are split into batches below it. Default 64M (256 MB).
   */
  maxBatchValues?: number;
  /** Keep or release the backward copies of the weights (default "auto": gradients/backward-copies.ts). */
  backwardCopies?: BackwardCopies;
  /**
   * With released copies, how many IG steps' recorded runs go through the backward pass together (each
   * group of them rebuilds the copies once). Default: as many as the memory rules allow (`passesTogether`).
   */
  passesTogether?: number;
}

export class CircuitTask {
  readonly graph: EdgeGraph;
  readonly forward: EdgeForward;
  private groups: Group[] = [];
  readonly baseline: { clean: number; corrupted: number };
  private readonly allKept: Float32Array;
  private readonly backwardCopies: BackwardCopies;
  private readonly passesTogether: number | undefined;

  constructor(
    readonly model: HookedTransformer,
    pairs: CircuitPairs,
    opts: CircuitTaskOptions = {},
  ) {
    const n = pairs.clean.length;
    if (n === 0) throw new Error("No prompt pairs: give at least one clean/corrupted pair");
    if (pairs.corrupted.length !== n || pairs.answer.length !== n || pairs.wrong.length !== n)
      throw new Error("Each clean prompt needs one corrupted prompt, one answer and one wrong token");
    this.backwardCopies = opts.backwardCopies ?? "auto";
    if (
      opts.passesTogether !== undefined &&
      !(Number.isInteger(opts.passesTogether) && opts.passesTogether >= 1)
    )
      throw new Error(`passesTogether must be a positive integer, got ${opts.passesTogether}`);
    this.passesTogether = opts.passesTogether;
    const arch = new ArchOps(model);
    const { nLayers, nHeads, parallelResidual } = model.cfg;
    this.graph = new EdgeGraph({ nLayers, nHeads, parallel: parallelResidual });
    this.forward = new EdgeForward(this.graph, arch);
    this.allKept = new Float32Array(this.graph.nEdges).fill(1);
    const byLength = new Map<number, number[]>();
    pairs.clean.forEach((toks, i) => {
      if (toks.length !== pairs.corrupted[i].length)
        throw new Error(
          `Pair ${i}: the clean prompt is ${toks.length} tokens but the corrupted one is ${pairs.corrupted[i].length}; ` +
            "edges are patched position by position, so reword one of the two until their token counts match",
        );
      const list = byLength.get(toks.length) ?? [];
      list.push(i);
      byLength.set(toks.length, list);
    });
    let clean = 0;
    let corrupted = 0;
    // Per prompt, a recorded run holds every node's output and each layer's 3H head inputs (P·D values
    // each), and with post-norms each layer's H head results and the MLP's output before ln2_post.
    const perLayer = 3 * arch.H + (arch.postNorms ? arch.H + 1 : 0);
    const perPrompt = (P: number) => P * arch.D * (this.graph.nodes.length + perLayer * arch.nLayers + 4);
    const batches: [number, number[]][] = [];
    for (const [P, idx] of byLength) {
      const size = Math.max(1, Math.floor((opts.maxBatchValues ?? 64e6) / perPrompt(P)));
      for (let i = 0; i < idx.length; i += size) batches.push([P, idx.slice(i, i + size)]);
    }
    for (const [P, idx] of batches) {
      const B = idx.length;
      const flat = (lists: readonly (readonly number[])[]) =>
        Int32Array.from(idx.flatMap((i) => [...lists[i]]));
      const metric = idx.map((i) => arch.logitDiffTerms(pairs.answer[i], pairs.wrong[i]));
      const shape: RunShape = { B, P, metric };
      const cleanInput = arch.inputNode(flat(pairs.clean), B, P);
      const corruptedInput = arch.inputNode(flat(pairs.corrupted), B, P);
      const corrRun = this.forward.run({
        shape,
        input: corruptedInput,
        mask: this.allKept,
        ref: this.forward.biasReference(shape),
      });
      const ref = this.forward.referenceFrom(shape, corrRun.diffs);
      const cleanRun = this.forward.run({ shape, input: cleanInput, mask: this.allKept, ref });
      const weight = B / n;
      this.groups.push({ shape, weight, cleanInput, corruptedInput, ref });
      clean += weight * mean(cleanRun.perPrompt);
      corrupted += weight * mean(corrRun.perPrompt);
    }
    this.baseline = { clean, corrupted };
  }

  /**
   * Gives the attention weights back to the model's kernels now and lets the task's runs go; the task
   * cannot be used after. Without it the kernels rebuild their copies on the model's next run, from
   * copies kept alive until then.
   */
  dispose(): void {
    this.forward.arch.giveBack();
    this.groups = [];
  }

  /** Faithfulness needs clean and corrupted runs that differ; a clear error otherwise. */
  checkBaselineGap(): void {
    const { clean, corrupted } = this.baseline;
    if (!(Math.abs(clean - corrupted) > 1e-6))
      throw new Error(
        `The clean and corrupted logit differences are (nearly) equal (${clean} vs ${corrupted}), so faithfulness ` +
          "is undefined: choose a corrupted prompt that changes the answer, or answer/wrong tokens the prompts disagree on",
      );
  }

  /** (metric − corrupted) / (clean − corrupted): 1 = the clean behaviour, 0 = the corrupted one. */
  normalize(metric: number): number {
    const { clean, corrupted } = this.baseline;
    return (metric - corrupted) / (clean - corrupted);
  }

  /** The metric with each edge's clean difference scaled by its mask value (1 kept, 0 removed). */
  evaluate(mask: Float32Array): number {
    this.checkMask(mask);
    let total = 0;
    for (const g of this.groups) {
      const run = this.forward.run({ shape: g.shape, input: g.cleanInput, mask, ref: g.ref });
      total += g.weight * mean(run.perPrompt);
    }
    return total;
  }

  /**
   * Exact scores: metric(every edge but e) − metric(clean) for each listed edge. Only the child's layer
   * onward is recomputed; earlier nodes keep their clean outputs.
   */
  async exactScores(
    edges: readonly number[],
    onProgress?: Progress,
    signal?: AbortSignal,
  ): Promise<Float64Array> {
    this.checkLive();
    const totals = new Float64Array(edges.length);
    const mask = this.allKept.slice();
    let done = 0;
    for (const g of this.groups) {
      const prefix = this.cleanDiffs(g);
      for (const [i, e] of edges.entries()) {
        await checkpointYield(signal, patchAborted);
        mask[e] = 0;
        const run = this.forward.run({
          shape: g.shape,
          input: g.cleanInput,
          mask,
          ref: g.ref,
          startLayer: this.graph.childOfEdge(e).layer,
          prefix,
        });
        mask[e] = 1;
        totals[i] += g.weight * mean(run.perPrompt);
        onProgress?.(++done, edges.length * this.groups.length);
      }
    }
    return totals.map((t) => t - this.baseline.clean);
  }

  /** [nNodes, N]: the clean run's node outputs minus the reference's, with every edge kept. */
  private cleanDiffs(g: Group): Float32Array {
    return this.forward.run({ shape: g.shape, input: g.cleanInput, mask: this.allKept, ref: g.ref }).diffs;
  }

  /**
   * Gradient scores: (corrupted − clean output of the parent) · d metric / d (child input), the gradient
   * averaged over the runs whose inputs are corrupted + α (clean − corrupted) for α = k/steps, k = 1..steps.
   * steps = 1 is EAP (the clean run alone); more is EAP-IG.
   */
  async gradientScores(steps: number, onProgress?: Progress, signal?: AbortSignal): Promise<Float32Array> {
    if (!Number.isInteger(steps) || steps < 1)
      throw new Error(`IG steps must be a positive integer, got ${steps}`);
    this.checkLive();
    const { graph } = this;
    const { H, D } = this.forward.arch;
    const C = 3 * H;
    const scores = new Float32Array(graph.nEdges);
    // Kept backward copies: one step at a time. Released: as many steps' recorded runs as fit in the
    // budget go through the backward pass together, so each layer's copies are built once per chunk.
    const release = releasesBackwardCopies(this.model, this.backwardCopies);
    const copies = release ? "release" : "keep";
    let done = 0;
    for (const g of this.groups) {
      const { B, P } = g.shape;
      const N = B * P * D;
      let sum: ChildGrads | null = null;
      const record = (k: number) => {
        const input = new Float32Array(N);
        for (let i = 0; i < N; i++)
          input[i] = g.corruptedInput[i] + (k / steps) * (g.cleanInput[i] - g.corruptedInput[i]);
        const args = { shape: g.shape, input, mask: this.allKept, ref: g.ref, record: true };
        // Only what the backward pass reads: the run's node differences are not kept.
        return { args, run: { saved: this.forward.run(args).saved } };
      };
      let together = 1;
      for (let k = 1; k <= steps; ) {
        await checkpointYield(signal, patchAborted);
        const passes = [record(k)];
        if (release && k === 1)
          together =
            this.passesTogether ?? passesTogether(this.model, this.forward.passBytes(passes[0].run, g.shape));
        while (passes.length < together && k + passes.length <= steps) passes.push(record(k + passes.length));
        sum = this.forward.backwardSum(passes, { copies, into: sum });
        done += passes.length;
        onProgress?.(done, steps * this.groups.length);
        k += passes.length;
      }
      const grads = sum as ChildGrads;
      // corrupted − clean = −(the clean run's difference from the reference)
      const scale = -g.weight / steps;
      const diffs = this.cleanDiffs(g);
      const { kernels } = this.forward.arch;
      for (let l = 0; l < this.forward.arch.nLayers; l++) {
        const hc = graph.children[graph.layerChildIndex(l)];
        const s = kernels.bmm(grads.heads[l], diffs.subarray(0, hc.nParents * N), 1, C, N, hc.nParents, true);
        for (let i = 0; i < s.length; i++) scores[hc.edgeOffset + i] += scale * s[i];
        const mc = graph.children[graph.layerChildIndex(l) + C];
        const sm = kernels.bmm(grads.mlp[l], diffs.subarray(0, mc.nParents * N), 1, 1, N, mc.nParents, true);
        for (let i = 0; i < sm.length; i++) scores[mc.edgeOffset + i] += scale * sm[i];
      }
      const fc = graph.children[graph.logitsChildIndex];
      for (let p = 0; p < fc.nParents; p++) {
        let s = 0;
        for (let b = 0; b < B; b++) {
          const o = p * N + ((b + 1) * P - 1) * D;
          for (let d = 0; d < D; d++) s += diffs[o + d] * grads.logits[b * D + d];
        }
        scores[fc.edgeOffset + p] += scale * s;
      }
    }
    return scores;
  }

  private checkLive(): void {
    if (this.groups.length === 0)
      throw new Error("This circuit task was disposed (its weights given back): make a new CircuitTask");
  }

  private checkMask(mask: Float32Array): void {
    this.checkLive();
    if (mask.length !== this.graph.nEdges)
      throw new Error(`An edge mask needs ${this.graph.nEdges} values (one per edge), got ${mask.length}`);
  }
}

function mean(xs: Float64Array): number {
  let s = 0;
  for (const x of xs) s += x;
  return s / xs.length;
}
