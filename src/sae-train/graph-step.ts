/**
 * The TopK training step (forward, loss, every gradient, and the AuxK term) as one graph of ONNX operators,
 * for a backend that runs whole graphs (`Kernels.graph`, onnxruntime): the products are MLAS GEMMs, the
 * selection onnxruntime's TopK, everything on its thread pool, and only the batch, the parameters and the
 * gradients cross into JavaScript. The same arithmetic as `batchLossAndGrads` (sae-loss.ts, whose notation
 * this follows), which stays the definition: test/sae-train/graph-step.test.ts holds this graph to it in
 * float64. Dense where a dense operator is cheaper than its sparse form (the decode and W_enc's and W_dec's
 * gradients from f and ∂L/∂pre scattered into [B, d_sae]), gathered where only k columns matter (∂L/∂f).
 */
import type { Kernels } from "../tensor/kernels.ts";
import { type CompiledGraph, type GraphNode, node, type OpGraph } from "../tensor/op-graph.ts";
import type { BatchStep, SaeDims } from "./sae-loss.ts";

interface GraphShape {
  applyBDecToInput: boolean;
  /** With the AuxK term (some latents dead this step). */
  auxK: boolean;
}

/** The step's graph for fixed widths; the batch size is left symbolic ("B"). */
export function topKStepGraph(dims: SaeDims, shape: GraphShape): OpGraph {
  const { dIn, dSae, dOut } = dims;
  const n: GraphNode[] = [];
  const xIn = shape.applyBDecToInput ? "xIn" : "X";
  if (shape.applyBDecToInput) n.push(node("Sub", ["X", "b_dec"], ["xIn"]));
  n.push(
    node("Gemm", [xIn, "W_enc", "b_enc"], ["pre"]), // [B, d_sae]
    node("TopK", ["pre", "K"], ["V", "I"]), // [B, k], descending, ties to the lower index
    node("Cast", ["I"], ["latents"], { to: 6 /* INT32 */ }),
    node("Relu", ["V"], ["fv"]),
    node("Shape", ["pre"], ["preShape"]),
    node("ConstantOfShape", ["preShape"], ["zerosBS"]),
    node("ScatterElements", ["zerosBS", "I", "fv"], ["f"], { axis: 1 }), // [B, d_sae]
    node("Gemm", ["f", "W_dec", "b_dec"], ["yHat"]), // [B, d_out]
    node("Sub", ["yHat", "Y"], ["err"]),
    node("ReduceSumSquare", ["err"], ["sse"], { keepdims: 0 }),
    node("Mul", ["err", "twoOverB"], ["dyHat"]), // ∂L/∂ŷ
    node("Gemm", ["f", "dyHat"], ["gW_decFit"], { transA: 1 }), // fᵀ ∂L/∂ŷ [d_sae, d_out]
    node("ReduceSum", ["dyHat", "axis0"], ["gb_decFit"], { keepdims: 0 }),
    // ∂L/∂f at the k selected latents: W_dec's rows gathered, each dotted with its row's ∂L/∂ŷ.
    node("Gather", ["W_dec", "I"], ["Wsel"], { axis: 0 }), // [B, k, d_out]
    node("Unsqueeze", ["dyHat", "axis2"], ["dyHat3"]), // [B, d_out, 1]
    node("MatMul", ["Wsel", "dyHat3"], ["df3"]), // [B, k, 1]
    node("Squeeze", ["df3", "axis2"], ["df"]),
    node("Greater", ["V", "zero"], ["active"]),
    node("Where", ["active", "df", "zero"], ["gPreSel"]), // ∂L/∂pre at the k selected latents
  );
  if (shape.auxK) {
    // Gao et al. 2024: the top k_aux pre-activations among the dead latents reconstruct the residual y − ŷ
    // (held fixed) through W_dec without bias: d = ê − (y − ŷ); aux = scale·Σ‖d‖²/B; auxC = 2·scale/B.
    n.push(
      node("Gather", ["pre", "deadColumns"], ["preDead"], { axis: 1 }), // [B, n_dead], columns ascending
      node("TopK", ["preDead", "KAux"], ["AV", "AIdead"]), // [B, k_aux]
      node("Gather", ["deadColumns", "AIdead"], ["AI"], { axis: 0 }), // back to latent numbers
      node("Gather", ["W_dec", "AI"], ["Waux"], { axis: 0 }), // [B, k_aux, d_out]
      node("Unsqueeze", ["AV", "axis2"], ["AVcol"]), // [B, k_aux, 1]
      node("Mul", ["AVcol", "Waux"], ["auxTerms"]),
      node("ReduceSum", ["auxTerms", "axis1"], ["eHat"], { keepdims: 0 }), // [B, d_out]
      node("Add", ["err", "eHat"], ["resid"]),
      node("ReduceSumSquare", ["resid"], ["auxSse"], { keepdims: 0 }),
      node("Mul", ["resid", "auxC"], ["residC"]),
      node("Unsqueeze", ["residC", "axis1"], ["residCrow"]), // [B, 1, d_out]
      node("Mul", ["Waux", "residCrow"], ["gAuxTerms"]),
      node("ReduceSum", ["gAuxTerms", "axis2"], ["gAux"], { keepdims: 0 }), // [B, k_aux]
      // One scatter of both terms' ∂L/∂pre (a latent may be selected by both: the sum).
      node("Concat", ["I", "AI"], ["Iboth"], { axis: 1 }),
      node("Concat", ["gPreSel", "gAux"], ["gBoth"], { axis: 1 }),
      node("ScatterElements", ["zerosBS", "Iboth", "gBoth"], ["gPre"], { axis: 1, reduction: "add" }),
      node("Unsqueeze", ["AI", "axis2"], ["AIcol"]), // [B, k_aux, 1]
      node("Mul", ["AVcol", "residCrow"], ["auxRows"]), // [B, k_aux, d_out]
      node("Shape", ["W_dec"], ["wShape"]),
      node("ConstantOfShape", ["wShape"], ["zerosW"]),
      node("ScatterND", ["zerosW", "AIcol", "auxRows"], ["gW_decAux"], { reduction: "add" }),
      node("Add", ["gW_decFit", "gW_decAux"], ["gW_dec"]),
    );
  } else {
    n.push(
      node("ScatterElements", ["zerosBS", "I", "gPreSel"], ["gPre"], { axis: 1 }), // [B, d_sae]
      node("Identity", ["gW_decFit"], ["gW_dec"]),
    );
  }
  n.push(
    node("Gemm", [xIn, "gPre"], ["gW_enc"], { transA: 1 }), // x'ᵀ ∂L/∂pre [d_in, d_sae]
    node("ReduceSum", ["gPre", "axis0"], ["gb_enc"], { keepdims: 0 }),
  );
  // With x' = x − b_dec, b_dec also gets −W_enc · ∂L/∂b_enc.
  if (shape.applyBDecToInput)
    n.push(
      node("MatMul", ["W_enc", "gb_enc"], ["bDecViaEnc"]),
      node("Sub", ["gb_decFit", "bDecViaEnc"], ["gb_dec"]),
    );
  else n.push(node("Identity", ["gb_decFit"], ["gb_dec"]));

  const f32 = (name: string, dims: (number | string)[]) => ({ name, dtype: "float32" as const, dims });
  return {
    name: shape.auxK ? "sae_topk_step_auxk" : "sae_topk_step",
    nodes: n,
    constants: [
      { name: "axis0", dtype: "int64", dims: [1], values: [0] },
      { name: "axis2", dtype: "int64", dims: [1], values: [2] },
      { name: "zero", dtype: "float32", dims: [], values: [0] },
      ...(shape.auxK ? [{ name: "axis1", dtype: "int64" as const, dims: [1], values: [1] }] : []),
    ],
    inputs: [
      f32("X", ["B", dIn]),
      f32("Y", ["B", dOut]),
      f32("W_enc", [dIn, dSae]),
      f32("b_enc", [dSae]),
      f32("W_dec", [dSae, dOut]),
      f32("b_dec", [dOut]),
      { name: "K", dtype: "int64", dims: [1] },
      f32("twoOverB", []),
      ...(shape.auxK
        ? [
            { name: "deadColumns", dtype: "int64" as const, dims: ["nDead"] },
            { name: "KAux", dtype: "int64" as const, dims: [1] },
            f32("auxC", []),
          ]
        : []),
    ],
    outputs: [
      f32("sse", []),
      f32("V", ["B", "k"]),
      { name: "latents", dtype: "int32", dims: ["B", "k"] },
      f32("gW_enc", [dIn, dSae]),
      f32("gb_enc", [dSae]),
      f32("gW_dec", [dSae, dOut]),
      f32("gb_dec", [dOut]),
      ...(shape.auxK ? [f32("auxSse", [])] : []),
    ],
  };
}

/**
 * `batchLossAndGrads` for TopK SAEs and transcoders on a backend with whole graphs (null: no such backend).
 * The returned step answers null for settings it does not cover (other architectures), and the caller takes
 * the TypeScript loops. Sessions are compiled on first use per (widths, b_dec on the input, AuxK) and kept.
 */
export function graphBatchStep(kernels: Kernels): BatchStep<Float32Array> | null {
  const compile = kernels.graph?.bind(kernels);
  if (!compile) return null;
  const sessions = new Map<string, CompiledGraph>();
  return (p, batch, dims, s) => {
    if (s.architecture !== "topk") return null;
    const { dIn, dSae, dOut } = dims;
    const B = batch.rows;
    const dead = batch.dead;
    const deadColumns: bigint[] = [];
    if (dead) for (let j = 0; j < dSae; j++) if (dead[j]) deadColumns.push(BigInt(j));
    const nDead = deadColumns.length;
    const auxK = nDead > 0 && s.auxCoefficient !== 0;
    const key = `${dIn}/${dSae}/${dOut}/${s.applyBDecToInput}/${auxK}`;
    let g = sessions.get(key);
    if (!g) {
      g = compile(topKStepGraph(dims, { applyBDecToInput: s.applyBDecToInput, auxK }));
      sessions.set(key, g);
    }
    const scalar = (v: number) => ({ data: Float32Array.of(v), dims: [] });
    const count = (v: number) => ({ data: BigInt64Array.of(BigInt(v)), dims: [1] });
    // Gao et al. Appendix B.1: k_aux = d_model / 2, scaled down while few latents are dead (as sae-loss.ts).
    const half = Math.max(1, Math.floor(dOut / 2));
    const scale = s.auxCoefficient * Math.min(nDead / half, 1);
    const out = g.run({
      X: { data: batch.x, dims: [B, dIn] },
      Y: { data: batch.y, dims: [B, dOut] },
      W_enc: { data: p.W_enc, dims: [dIn, dSae] },
      b_enc: { data: p.b_enc, dims: [dSae] },
      W_dec: { data: p.W_dec, dims: [dSae, dOut] },
      b_dec: { data: p.b_dec, dims: [dOut] },
      K: count(Math.min(s.k, dSae)),
      twoOverB: scalar(2 / B),
      ...(auxK
        ? {
            deadColumns: { data: BigInt64Array.from(deadColumns), dims: [nDead] },
            KAux: count(Math.min(half, nDead)),
            auxC: scalar((2 * scale) / B),
          }
        : {}),
    });
    const V = out.V as Float32Array;
    const latents = out.latents as Int32Array;
    const fired = new Uint8Array(dSae);
    let nnz = 0;
    for (let e = 0; e < V.length; e++)
      if (V[e] > 0) {
        fired[latents[e]] = 1;
        nnz++;
      }
    const mse = (out.sse as Float32Array)[0] / B;
    const aux = auxK ? (scale * (out.auxSse as Float32Array)[0]) / B : 0;
    return {
      loss: mse + aux,
      mse,
      aux,
      sparsity: 0,
      l0: nnz / B,
      fired,
      minKept: Number.NaN,
      grads: {
        W_enc: out.gW_enc as Float32Array,
        b_enc: out.gb_enc as Float32Array,
        W_dec: out.gW_dec as Float32Array,
        b_dec: out.gb_dec as Float32Array,
      },
    };
  };
}
