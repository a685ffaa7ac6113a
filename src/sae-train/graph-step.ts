/**
 * The training step (forward, loss, every gradient, and the AuxK term) of a TopK, BatchTopK or JumpReLU SAE or
 * transcoder as one graph of ONNX operators, for a backend that runs whole graphs (`Kernels.graph`,
 * onnxruntime): the products are MLAS GEMMs, the selections onnxruntime's TopK, everything on its thread pool,
 * and only the batch, the parameters and the gradients cross into JavaScript. The same arithmetic as
 * `batchLossAndGrads` (sae-loss.ts, whose notation this follows), which stays the definition:
 * test/sae-train/graph-step.test.ts holds each graph to it in float64.
 *
 * The phases, as nodes: x' and the pre-activations (one Gemm with b_enc); the active latents and f
 * (architecture: TopK's k per row, scattered into [B, d_sae]; BatchTopK's k·B of the whole batch; JumpReLU's
 * pre > θ); the decode and ∂L/∂ŷ; W_dec's gradient fᵀ ∂L/∂ŷ; ∂L/∂pre (TopK: at its k latents only, from the
 * gathered W_dec rows; the others: the dense ∂L/∂ŷ W_decᵀ masked, which JumpReLU's threshold gradient needs
 * anyway); AuxK for dead latents (TopK, BatchTopK); W_enc's, b_enc's and b_dec's gradients.
 */
import type { Kernels } from "../tensor/kernels.ts";
import {
  type CompiledGraph,
  type GraphNode,
  type GraphValue,
  node,
  type OpGraph,
} from "../tensor/op-graph.ts";
import type { BatchStep, LossSettings, SaeDims } from "./sae-loss.ts";

/** The architectures with a graph; standard's norm-weighted L1 takes the TypeScript loops. */
const GRAPH_ARCHITECTURES = ["topk", "batchtopk", "jumprelu"] as const;
type GraphArchitecture = (typeof GRAPH_ARCHITECTURES)[number];

interface GraphShape {
  architecture: GraphArchitecture;
  applyBDecToInput: boolean;
  /** With the AuxK term (some latents dead this step; TopK and BatchTopK). */
  auxK: boolean;
}

const f32 = (name: string, dims: (number | string)[]): GraphValue => ({ name, dtype: "float32", dims });
const int64 = (name: string, dims: (number | string)[]): GraphValue => ({ name, dtype: "int64", dims });

/** TopK: the k largest pre-activations of each row, relu'd, scattered into f; ∂L/∂f only at those k. */
function topKLatents(n: GraphNode[]): void {
  n.push(
    node("TopK", ["pre", "K"], ["V", "I"]), // [B, k], descending, ties to the lower index
    node("Cast", ["I"], ["latents"], { to: 6 /* INT32 */ }),
    node("Relu", ["V"], ["fv"]),
    node("Shape", ["pre"], ["preShape"]),
    node("ConstantOfShape", ["preShape"], ["zerosBS"]),
    node("ScatterElements", ["zerosBS", "I", "fv"], ["f"], { axis: 1 }), // [B, d_sae]
  );
}

function topKPreGrad(n: GraphNode[]): void {
  n.push(
    // ∂L/∂f at the k selected latents: W_dec's rows gathered, each dotted with its row's ∂L/∂ŷ.
    node("Gather", ["W_dec", "I"], ["Wsel"], { axis: 0 }), // [B, k, d_out]
    node("Unsqueeze", ["dyHat", "axis2"], ["dyHat3"]), // [B, d_out, 1]
    node("MatMul", ["Wsel", "dyHat3"], ["df3"]), // [B, k, 1]
    node("Squeeze", ["df3", "axis2"], ["df"]),
    node("Greater", ["V", "zero"], ["active"]),
    node("Where", ["active", "df", "zero"], ["gPreSel"]), // ∂L/∂pre at the k selected latents
  );
}

/**
 * BatchTopK: the k·B largest positive pre-activations of the batch (all ties at the cut kept, as the loops
 * keep them); `minKept` is the smallest kept (+∞ when none: NaN in JavaScript). JumpReLU: pre > θ = exp(log θ).
 * Both give the dense mask `active` [B, d_sae] and f = pre where active.
 */
function maskedLatents(n: GraphNode[], architecture: "batchtopk" | "jumprelu"): void {
  if (architecture === "batchtopk")
    n.push(
      node("Reshape", ["pre", "flat"], ["preFlat"]), // [1, B·d_sae]
      node("TopK", ["preFlat", "KBatch"], ["batchTop", "batchTopAt"], { sorted: 0 }),
      node("ReduceMin", ["batchTop"], ["cut"], { keepdims: 0 }),
      node("GreaterOrEqual", ["pre", "cut"], ["atLeastCut"]),
      node("Greater", ["pre", "zero"], ["positive"]),
      node("And", ["atLeastCut", "positive"], ["active"]),
    );
  else
    n.push(
      node("Exp", ["log_threshold"], ["theta"]), // [d_sae]
      node("Greater", ["pre", "theta"], ["active"]),
    );
  n.push(
    node("Where", ["active", "pre", "zero"], ["f"]), // [B, d_sae]
    node("Cast", ["active"], ["activeF"], { to: 1 /* FLOAT */ }),
    node("ReduceSum", ["activeF"], ["activeCount"], { keepdims: 0 }),
    node("ReduceMax", ["activeF", "axis0"], ["firedF"], { keepdims: 0 }), // [d_sae]
  );
  if (architecture === "batchtopk")
    n.push(
      node("Where", ["active", "pre", "posInf"], ["keptOrInf"]),
      node("ReduceMin", ["keptOrInf"], ["minKept"], { keepdims: 0 }),
    );
}

/** ∂L/∂pre where active from the dense ∂L/∂f; JumpReLU adds its L0 term's straight-through θ gradient. */
function maskedPreGrad(n: GraphNode[], architecture: "batchtopk" | "jumprelu"): void {
  n.push(
    node("Gemm", ["dyHat", "W_dec"], ["dfDense"], { transB: 1 }), // ∂L/∂f [B, d_sae]
    node("Where", ["active", "dfDense", "zero"], ["gPreFit"]),
  );
  if (architecture === "jumprelu")
    // L0 = Σ H(pre − θ) / B; straight-through (Rajamanoharan et al. 2024): within the band |pre − θ| < ε/2,
    // ∂/∂θ ≈ −(θ/ε)·∂L/∂f − l1/(B·ε); ∂L/∂log θ = θ · ∂L/∂θ.
    n.push(
      node("Sub", ["pre", "theta"], ["overTheta"]),
      node("Abs", ["overTheta"], ["distance"]),
      node("Less", ["distance", "halfBand"], ["inBand"]),
      node("Mul", ["theta", "minusInvEps"], ["minusThetaOverEps"]),
      node("Mul", ["dfDense", "minusThetaOverEps"], ["thetaFit"]),
      node("Sub", ["thetaFit", "l1OverBEps"], ["thetaTerms"]),
      node("Where", ["inBand", "thetaTerms", "zero"], ["thetaInBand"]),
      node("ReduceSum", ["thetaInBand", "axis0"], ["gTheta"], { keepdims: 0 }),
      node("Mul", ["gTheta", "theta"], ["glog_threshold"]),
    );
}

/**
 * AuxK (Gao et al. 2024): the top k_aux pre-activations among the dead latents reconstruct the residual
 * y − ŷ (held fixed) through W_dec without bias: d = ê − (y − ŷ); aux = scale·Σ‖d‖²/B; auxC = 2·scale/B.
 * Leaves `AI` / `gAux` (∂L/∂pre at the chosen latents, [B, k_aux]) and W_dec's gradient `gW_dec`.
 */
function auxK(n: GraphNode[]): void {
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
    node("Unsqueeze", ["AI", "axis2"], ["AIcol"]), // [B, k_aux, 1]
    node("Mul", ["AVcol", "residCrow"], ["auxRows"]), // [B, k_aux, d_out]
    node("Shape", ["W_dec"], ["wShape"]),
    node("ConstantOfShape", ["wShape"], ["zerosW"]),
    node("ScatterND", ["zerosW", "AIcol", "auxRows"], ["gW_decAux"], { reduction: "add" }),
    node("Add", ["gW_decFit", "gW_decAux"], ["gW_dec"]),
  );
}

/** The step's graph for fixed widths; the batch size is left symbolic ("B"). */
export function stepGraph(dims: SaeDims, shape: GraphShape): OpGraph {
  const { dIn, dSae, dOut } = dims;
  const { architecture } = shape;
  const n: GraphNode[] = [];
  const xIn = shape.applyBDecToInput ? "xIn" : "X";
  if (shape.applyBDecToInput) n.push(node("Sub", ["X", "b_dec"], ["xIn"]));
  n.push(node("Gemm", [xIn, "W_enc", "b_enc"], ["pre"])); // [B, d_sae]
  if (architecture === "topk") topKLatents(n);
  else maskedLatents(n, architecture);
  n.push(
    node("Gemm", ["f", "W_dec", "b_dec"], ["yHat"]), // [B, d_out]
    node("Sub", ["yHat", "Y"], ["err"]),
    node("ReduceSumSquare", ["err"], ["sse"], { keepdims: 0 }),
    node("Mul", ["err", "twoOverB"], ["dyHat"]), // ∂L/∂ŷ
    node("Gemm", ["f", "dyHat"], ["gW_decFit"], { transA: 1 }), // fᵀ ∂L/∂ŷ [d_sae, d_out]
    node("ReduceSum", ["dyHat", "axis0"], ["gb_decFit"], { keepdims: 0 }),
  );
  if (architecture === "topk") topKPreGrad(n);
  else maskedPreGrad(n, architecture);
  if (shape.auxK) auxK(n);
  else n.push(node("Identity", ["gW_decFit"], ["gW_dec"]));
  // ∂L/∂pre into [B, d_sae]; TopK scatters its k (and AuxK's) values in one pass (a latent chosen by both: the
  // sum), the masked architectures add AuxK's into their dense one.
  if (architecture === "topk" && shape.auxK)
    n.push(
      node("Concat", ["I", "AI"], ["Iboth"], { axis: 1 }),
      node("Concat", ["gPreSel", "gAux"], ["gBoth"], { axis: 1 }),
      node("ScatterElements", ["zerosBS", "Iboth", "gBoth"], ["gPre"], { axis: 1, reduction: "add" }),
    );
  else if (architecture === "topk")
    n.push(node("ScatterElements", ["zerosBS", "I", "gPreSel"], ["gPre"], { axis: 1 }));
  else if (shape.auxK)
    n.push(node("ScatterElements", ["gPreFit", "AI", "gAux"], ["gPre"], { axis: 1, reduction: "add" }));
  else n.push(node("Identity", ["gPreFit"], ["gPre"]));
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

  const topk = architecture === "topk";
  const jumprelu = architecture === "jumprelu";
  const batchtopk = architecture === "batchtopk";
  const constant = (name: string, dtype: "int64" | "float32", dims: number[], values: number[]) => ({
    name,
    dtype,
    dims,
    values,
  });
  return {
    name: `sae_${architecture}_step${shape.auxK ? "_auxk" : ""}`,
    nodes: n,
    constants: [
      constant("axis0", "int64", [1], [0]),
      constant("axis1", "int64", [1], [1]),
      constant("axis2", "int64", [1], [2]),
      constant("zero", "float32", [], [0]),
      constant("flat", "int64", [2], [1, -1]),
      constant("posInf", "float32", [], [Number.POSITIVE_INFINITY]),
    ],
    inputs: [
      f32("X", ["B", dIn]),
      f32("Y", ["B", dOut]),
      f32("W_enc", [dIn, dSae]),
      f32("b_enc", [dSae]),
      f32("W_dec", [dSae, dOut]),
      f32("b_dec", [dOut]),
      f32("twoOverB", []),
      ...(topk ? [int64("K", [1])] : []),
      ...(batchtopk ? [int64("KBatch", [1])] : []),
      ...(jumprelu
        ? [f32("log_threshold", [dSae]), f32("halfBand", []), f32("minusInvEps", []), f32("l1OverBEps", [])]
        : []),
      ...(shape.auxK ? [int64("deadColumns", ["nDead"]), int64("KAux", [1]), f32("auxC", [])] : []),
    ],
    outputs: [
      f32("sse", []),
      f32("gW_enc", [dIn, dSae]),
      f32("gb_enc", [dSae]),
      f32("gW_dec", [dSae, dOut]),
      f32("gb_dec", [dOut]),
      ...(topk ? [f32("V", ["B", "k"]), { name: "latents", dtype: "int32" as const, dims: ["B", "k"] }] : []),
      ...(topk ? [] : [f32("activeCount", []), f32("firedF", [dSae])]),
      ...(batchtopk ? [f32("minKept", [])] : []),
      ...(jumprelu ? [f32("glog_threshold", [dSae])] : []),
      ...(shape.auxK ? [f32("auxSse", [])] : []),
    ],
  };
}

/** Whether `graphBatchStep` takes this architecture (else the TypeScript loops do). */
export function isGraphArchitecture(a: LossSettings["architecture"]): a is GraphArchitecture {
  return (GRAPH_ARCHITECTURES as readonly string[]).includes(a);
}

/**
 * `batchLossAndGrads` on a backend with whole graphs (null: no such backend). The returned step answers null
 * for settings it does not cover (standard), and the caller takes the TypeScript loops. Sessions are compiled
 * on first use per (architecture, widths, b_dec on the input, AuxK) and kept.
 */
export function graphBatchStep(kernels: Kernels): BatchStep<Float32Array> | null {
  const compile = kernels.graph?.bind(kernels);
  if (!compile) return null;
  const sessions = new Map<string, CompiledGraph>();
  return (p, batch, dims, s) => {
    const { architecture } = s;
    if (!isGraphArchitecture(architecture)) return null;
    if (architecture === "jumprelu" && !p.log_threshold) return null;
    const { dIn, dSae, dOut } = dims;
    const B = batch.rows;
    const deadColumns: bigint[] = [];
    if (batch.dead && architecture !== "jumprelu")
      for (let j = 0; j < dSae; j++) if (batch.dead[j]) deadColumns.push(BigInt(j));
    const nDead = deadColumns.length;
    const withAux = nDead > 0 && s.auxCoefficient !== 0;
    const key = `${architecture}/${dIn}/${dSae}/${dOut}/${s.applyBDecToInput}/${withAux}`;
    let g = sessions.get(key);
    if (!g) {
      g = compile(stepGraph(dims, { architecture, applyBDecToInput: s.applyBDecToInput, auxK: withAux }));
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
      twoOverB: scalar(2 / B),
      ...(architecture === "topk" ? { K: count(Math.min(s.k, dSae)) } : {}),
      ...(architecture === "batchtopk" ? { KBatch: count(Math.min(Math.round(s.k * B), B * dSae)) } : {}),
      ...(architecture === "jumprelu"
        ? {
            log_threshold: { data: p.log_threshold!, dims: [dSae] },
            halfBand: scalar(s.bandwidth / 2),
            minusInvEps: scalar(-1 / s.bandwidth),
            l1OverBEps: scalar(s.l1 / (B * s.bandwidth)),
          }
        : {}),
      ...(withAux
        ? {
            deadColumns: { data: BigInt64Array.from(deadColumns), dims: [nDead] },
            KAux: count(Math.min(half, nDead)),
            auxC: scalar((2 * scale) / B),
          }
        : {}),
    });
    const fired = new Uint8Array(dSae);
    let nnz = 0;
    if (architecture === "topk") {
      const V = out.V as Float32Array;
      const latents = out.latents as Int32Array;
      for (let e = 0; e < V.length; e++)
        if (V[e] > 0) {
          fired[latents[e]] = 1;
          nnz++;
        }
    } else {
      const firedF = out.firedF as Float32Array;
      for (let j = 0; j < dSae; j++) fired[j] = firedF[j] > 0 ? 1 : 0;
      nnz = (out.activeCount as Float32Array)[0];
    }
    const mse = (out.sse as Float32Array)[0] / B;
    const aux = withAux ? (scale * (out.auxSse as Float32Array)[0]) / B : 0;
    const sparsity = architecture === "jumprelu" ? (s.l1 * nnz) / B : 0;
    const minKept = architecture === "batchtopk" ? (out.minKept as Float32Array)[0] : Number.NaN;
    return {
      loss: mse + aux + sparsity,
      mse,
      aux,
      sparsity,
      l0: nnz / B,
      fired,
      minKept: Number.isFinite(minKept) ? minKept : Number.NaN,
      grads: {
        W_enc: out.gW_enc as Float32Array,
        b_enc: out.gb_enc as Float32Array,
        W_dec: out.gW_dec as Float32Array,
        b_dec: out.gb_dec as Float32Array,
        ...(architecture === "jumprelu" ? { log_threshold: out.glog_threshold as Float32Array } : {}),
      },
    };
  };
}
