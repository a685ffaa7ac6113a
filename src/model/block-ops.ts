/**
 * What passes outside src/model need of a built model, under names of their own: each block's kernel ops
 * (its projections, whose `backward` the gradient passes use), the unembedding op, the rotary positions,
 * the residual entering block 0, and lending a block's attention weights in another layout. The forward
 * engine itself stays inside src/model (test/architecture/model-interface.test.ts holds every other
 * module to this).
 */
import type { LinearOp } from "../tensor/kernels.ts";
import type { BlockOps } from "./forward.ts";
import type { HookedTransformer } from "./hooked-transformer.ts";
import { HookDispatcher } from "./hooks.ts";
import type { Rotary } from "./rotary.ts";

export type { BlockOps } from "./forward.ts";

/** Block `layer`'s projections as kernel ops (the MLP's: `MlpOps`). */
export function blockOps(model: HookedTransformer, layer: number): Readonly<BlockOps> {
  return model.forwardEngine.blockOps(layer);
}

/** Every op of one block (a plain MLP has no gate). */
export function opsOfBlock(ops: Readonly<BlockOps>): LinearOp[] {
  return Object.values(ops).filter((op): op is LinearOp => op !== null);
}

/** The unembedding [d_model] → [d_vocab], with b_U. */
export function unembedOp(model: HookedTransformer): LinearOp {
  return model.forwardEngine.unembedOp();
}

/** The rotary positions block `layer` rotates q and k by (Gemma 3: a base per layer type), or null for learned positions. */
export function rotaryOf(model: HookedTransformer, layer: number): Rotary | null {
  return model.forwardEngine.rotary(layer);
}

/** The residual entering block 0 ([B, P, d_model]): the embeddings, with positions where learned. */
export function embedResidual(
  model: HookedTransformer,
  tokens: Int32Array,
  B: number,
  P: number,
): Float32Array {
  return model.forwardEngine.forward({
    batch: B,
    pos: P,
    tokens,
    stopAtLayer: 0,
    hooks: new HookDispatcher(model.cfg),
    logits: "none",
  }).residual.data;
}

/**
 * Lets the kernels drop their own copies of block `layer`'s attention weights while the caller holds them
 * in its layout: `qkv` and `o` rebuild the kernels' layouts ([D, (H + 2 Hkv) dh] fused by `fuseHeads`, and
 * W_O [H dh, D]) exactly, when the model next runs. `reclaimAttentionWeights` gives them back.
 */
export function lendAttentionWeights(
  model: HookedTransformer,
  layer: number,
  rebuild: { qkv: () => Float32Array; o: () => Float32Array },
): void {
  const ops = blockOps(model, layer);
  ops.qkv.lend(rebuild.qkv);
  ops.o.lend(rebuild.o);
}

/** The kernels rebuild block `layer`'s attention weights now, from what was lent. */
export function reclaimAttentionWeights(model: HookedTransformer, layer: number): void {
  const ops = blockOps(model, layer);
  ops.qkv.reclaim();
  ops.o.reclaim();
}
