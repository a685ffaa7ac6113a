/**
 * After the kernel backend has taken a model's matrices, the JavaScript copies are dropped: each matrix
 * field of ModelWeights becomes a read-only view that reads the weight back from its kernel op on first
 * use. The last few matrices read are kept (`RecentWeights`), so a loop reading one view again and again
 * reads it once. The onnx backend copies every weight it is given (docs/benchmarks.md, "Memory"), so
 * without this the model would be held twice.
 */
import type { LinearOp } from "../tensor/kernels.ts";
import { Tensor } from "../tensor/tensor.ts";
import type { BlockWeights, LayerNormParams, ModelWeights } from "../weights/canonical-weights.ts";
import type { ModelConfig } from "../weights/config.ts";
import type { EmbeddingTable } from "./embedding-table.ts";

/** The kernel ops of one block, as the forward pass builds them. */
export interface BlockOpsView {
  /** [d_model, (n_heads + 2 n_kv_heads) d_head]: columns Q | K | V, head-major within each. */
  qkv: LinearOp;
  /** [n_heads d_head, d_model]. */
  o: LinearOp;
  /** [d_model, d_mlp] (the up projection of a gated MLP). */
  mlpIn: LinearOp;
  /** [d_model, d_mlp]: a gated MLP's gate, or null. */
  mlpGate: LinearOp | null;
  /** [d_mlp, d_model]. */
  mlpOut: LinearOp;
}

/**
 * The last few weights read back, kept strongly and dropped in the order read. Not WeakRefs: a WeakRef
 * keeps its target alive until the current job ends, so a synchronous loop over the layers reading one
 * view each would hold every layer's matrix (measured: W_O of all 48 GPT-2-XL layers, 0.5 GB; building
 * circuits' head weights, each layer's fused Q|K|V as well).
 */
export class RecentWeights {
  private readonly held = new Map<object, Tensor>();

  constructor(private readonly maxHeld = 4) {}

  /** The weight of `key`: the one kept from an earlier read, else `compute()`'s, now kept. */
  get(key: object, compute: () => Tensor): Tensor {
    let value = this.held.get(key);
    if (value) {
      this.held.delete(key); // most recent last
    } else {
      value = compute();
    }
    this.held.set(key, value);
    while (this.held.size > this.maxHeld) this.held.delete(this.held.keys().next().value as object);
    return value;
  }
}

/** Replaces a block's matrices by views onto its ops, which now hold them. */
export function handBlockToOps(
  block: BlockWeights,
  { cfg, op, recent }: { cfg: ModelConfig; op: BlockOpsView; recent: RecentWeights },
): void {
  const { dModel: D, nHeads: H, nKvHeads: Hkv, dHead: dh, dMlp } = cfg;
  const fused = {};
  const qkv = () => recent.get(fused, () => new Tensor(op.qkv.weight(), [D, (H + 2 * Hkv) * dh])).data;
  const view = (field: MatrixField, compute: () => Tensor) => {
    const key = {};
    defineView(block, field, () => recent.get(key, compute));
  };
  view("W_Q", () => headsOf(qkv(), { first: 0, heads: H, D, dh }));
  view("W_K", () => headsOf(qkv(), { first: H, heads: Hkv, D, dh }));
  view("W_V", () => headsOf(qkv(), { first: H + Hkv, heads: Hkv, D, dh }));
  view("W_O", () => new Tensor(op.o.weight(), [H, dh, D]));
  const gate = op.mlpGate;
  if (gate) view("W_gate", () => new Tensor(gate.weight(), [D, dMlp]));
  view("W_in", () => new Tensor(op.mlpIn.weight(), [D, dMlp]));
  view("W_out", () => new Tensor(op.mlpOut.weight(), [dMlp, D]));
}

/**
 * The model's weights once the kernels hold them, blocks still to come: W_E a view onto its table (which
 * may read it from the checkpoint file), W_U a view onto the unembedding op. Unlike the block matrices W_U
 * is kept once read: every logit-difference metric, attribution and neuron page reads its columns, and
 * reading it back costs a product the size of the vocabulary.
 */
export function viewWeights(p: {
  W_pos: Tensor | null;
  lnFinal: LayerNormParams | null;
  b_U: Tensor;
  embedding: EmbeddingTable;
  unembed: LinearOp;
  cfg: ModelConfig;
}): ModelWeights {
  const weights = { W_pos: p.W_pos, blocks: [], lnFinal: p.lnFinal, b_U: p.b_U } as Omit<
    ModelWeights,
    "W_E" | "W_U"
  >;
  Object.defineProperty(weights, "W_E", {
    configurable: true,
    enumerable: true,
    get: () => p.embedding.full(),
    set: readOnly("W_E"),
  });
  let kept: Tensor | null = null;
  defineView(weights as ModelWeights, "W_U", () => {
    kept ??= new Tensor(p.unembed.weight(), [p.cfg.dModel, p.cfg.dVocab]);
    return kept;
  });
  return weights as ModelWeights;
}

type MatrixField = "W_Q" | "W_K" | "W_V" | "W_O" | "W_gate" | "W_in" | "W_out";

function defineView(
  target: BlockWeights | ModelWeights,
  field: MatrixField | "W_U",
  get: () => Tensor,
): void {
  Object.defineProperty(target, field, {
    configurable: true,
    enumerable: true,
    get,
    set: readOnly(field),
  });
}

function readOnly(field: string): () => never {
  return () => {
    throw new Error(
      `${field} is held by the kernel backend once the model is built: change weights before building ` +
        "the model (HookedTransformer.fromCheckpoint), not after",
    );
  };
}

/** Heads first..first+heads of a fused [D, cols] matrix as [heads, D, dh]. */
function headsOf(fused: Float32Array, s: { first: number; heads: number; D: number; dh: number }): Tensor {
  const cols = fused.length / s.D;
  const out = new Float32Array(s.heads * s.D * s.dh);
  for (let h = 0; h < s.heads; h++)
    for (let d = 0; d < s.D; d++) {
      const src = d * cols + (s.first + h) * s.dh;
      out.set(fused.subarray(src, src + s.dh), (h * s.D + d) * s.dh);
    }
  return new Tensor(out, [s.heads, s.D, s.dh]);
}
