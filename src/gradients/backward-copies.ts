/**
 * The backward copies of the weights: a backend may hold a second copy of each weight for dy @ W^T
 * (onnxruntime: one session holding W^T per weight, built on first use; `LinearOp.backward`). Kept,
 * they make every later gradient pass fast; they also double the model's memory. This module decides,
 * per gradient computation, whether to keep them, and runs several backward passes layer by layer
 * together so that, when they are released, each layer's copy is built once per computation.
 */
import { blockOps, opsOfBlock, unembedOp } from "../model/block-ops.ts";
import type { HookedTransformer } from "../model/hooked-transformer.ts";
import type { LinearOp } from "../tensor/kernels.ts";
import { memoryBudget } from "../util/memory-budget.ts";
import { returnFreedMemory } from "../util/return-freed-memory.ts";

/** "auto" (default): keep while a second copy of the weights is cheap for the memory there is. */
export type BackwardCopies = "keep" | "release" | "auto";

/**
 * Keep the backward copies iff the model's float32 weight bytes are at most this share of the memory
 * budget (`--memory-limit`, else the free memory; copies already held count as free). On a 24 GB
 * machine GPT-2 small (0.5 GB) and medium (1.4 GB) keep; Llama-3.2-1B (4.6 GB) and GPT-2 XL (5.9 GB)
 * release, since loading them leaves about 15 GB free; so does any model whose `--memory-limit` leaves
 * less than 4x its weights. Releasing costs each gradient computation one read-back of the weights.
 */
export const KEEP_COPIES_MAX_SHARE = 0.25;

/** Every op of the model whose backward may hold a copy: each block's projections and the unembedding. */
export function weightOps(model: HookedTransformer): LinearOp[] {
  const ops: LinearOp[] = [unembedOp(model)];
  for (let l = 0; l < model.cfg.nLayers; l++) ops.push(...opsOfBlock(blockOps(model, l)));
  return ops;
}

/** Bytes held by backward copies right now. */
export function backwardCopyBytes(model: HookedTransformer): number {
  return heldBytes(weightOps(model));
}

function heldBytes(ops: readonly LinearOp[]): number {
  return ops.reduce((s, op) => s + op.backwardBytes, 0);
}

/** The float32 bytes of the weights `ops` compute with. */
function float32Bytes(ops: readonly LinearOp[]): number {
  return ops.reduce((s, op) => s + 4 * op.inDim * op.outDim, 0);
}

/** Whether a gradient computation should release each layer's backward copies once it is done with them. */
export function releasesBackwardCopies(model: HookedTransformer, copies: BackwardCopies = "auto"): boolean {
  if (copies !== "auto") return copies === "release";
  const ops = weightOps(model);
  const budget = memoryBudget(model.memoryLimit).availableBytes + heldBytes(ops);
  return float32Bytes(ops) > KEEP_COPIES_MAX_SHARE * budget;
}

/**
 * The most the recorded passes run together may hold, as a share of the model's float32 weights: the
 * copies are released to save about the weights' size, and grouping passes should not spend much of it
 * again (GPT-2 XL: 0.6 GB, all five recorded EAP-IG runs of 8 tokens at about 86 MB each).
 */
export const PASSES_MAX_WEIGHT_SHARE = 0.1;

/**
 * How many backward passes to run together when their copies are released, each holding `bytesPerPass`
 * until it is done: as many as fit in the same share of the budget as the rule above and in
 * `PASSES_MAX_WEIGHT_SHARE` of the weights, at least one.
 */
export function passesTogether(model: HookedTransformer, bytesPerPass: number): number {
  const budget = memoryBudget(model.memoryLimit).availableBytes;
  const allowed = Math.min(
    KEEP_COPIES_MAX_SHARE * budget,
    PASSES_MAX_WEIGHT_SHARE * float32Bytes(weightOps(model)),
  );
  return Math.max(1, Math.floor(allowed / Math.max(1, bytesPerPass)));
}

/**
 * A backward pass written as a generator: it yields, at each stage boundary (the unembedding, then each
 * layer from the last), the ops whose `backward` that stage used, and returns its result.
 */
export type StagedBackward<T> = Generator<readonly LinearOp[], T, void>;

/**
 * Runs backward passes of the same model in lockstep, stage by stage: every pass finishes a stage before
 * any starts the next, and with `release` the stage's backward copies are dropped then. All passes must
 * go through the same stages (the same model). `onStage(done)` after each stage.
 */
export function runInLockstep<T>(
  passes: readonly StagedBackward<T>[],
  opts: { release: boolean; onStage?: (done: number) => void },
): T[] {
  const results: T[] = new Array(passes.length);
  const finished = new Array<boolean>(passes.length).fill(false);
  let open = passes.length;
  for (let stage = 1; open > 0; stage++) {
    const used = new Set<LinearOp>();
    let advanced = false;
    passes.forEach((pass, i) => {
      if (finished[i]) return;
      const step = pass.next();
      if (step.done) {
        results[i] = step.value;
        finished[i] = true;
        open--;
      } else {
        advanced = true;
        for (const op of step.value) used.add(op);
      }
    });
    if (opts.release) {
      for (const op of used) op.releaseBackward();
      returnFreedMemory(); // else the C library keeps what the released copies freed
    }
    if (advanced) opts.onStage?.(stage);
  }
  return results;
}
