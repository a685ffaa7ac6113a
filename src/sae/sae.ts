/**
 * A sparse autoencoder as SAELens computes it (standard, topk, jumprelu, gated):
 *
 *   x' = x·s − b_dec·apply_b_dec_to_input          (s: activation_scaler.json's scaling_factor, else 1)
 *   pre = x' W_enc + b_enc                          (gated: the magnitude path x'(W_enc ⊙ exp r_mag) + b_mag)
 *   f = relu(pre) | relu(pre)·[pre > threshold] | the k largest of pre, relu'd | [x' W_enc + b_gate > 0]·relu(pre)
 *   x̂ = (f W_dec + b_dec) / s
 *
 * Held once: W_enc only by the kernels (onnxruntime keeps its own copy, so ours is dropped), W_dec only
 * here, for a decode that touches only the rows of active features.
 */
import type { Kernels, LinearOp } from "../tensor/kernels.ts";
import type { SaeConfig } from "./sae-config.ts";
import { rowTopK } from "./topk.ts";

/** SAELens' tensor names and layouts: W_enc [d_in, d_sae], W_dec [d_sae, d_in]. */
export interface SaeWeights {
  W_enc: Float32Array;
  W_dec: Float32Array;
  b_dec: Float32Array;
  /** standard, topk, jumprelu. */
  b_enc?: Float32Array;
  /** jumprelu. */
  threshold?: Float32Array;
  /** gated. */
  b_gate?: Float32Array;
  r_mag?: Float32Array;
  b_mag?: Float32Array;
}
export type SaeTensorName = keyof SaeWeights;

/** The tensors an architecture has in `sae_weights.safetensors`, with their shapes. */
export function saeTensorShapes(
  cfg: Pick<SaeConfig, "architecture" | "dIn" | "dSae">,
): Map<SaeTensorName, number[]> {
  const { dIn, dSae } = cfg;
  const shapes = new Map<SaeTensorName, number[]>([
    ["W_enc", [dIn, dSae]],
    ["W_dec", [dSae, dIn]],
    ["b_dec", [dIn]],
  ]);
  if (cfg.architecture === "gated") {
    shapes.set("b_gate", [dSae]);
    shapes.set("r_mag", [dSae]);
    shapes.set("b_mag", [dSae]);
  } else {
    shapes.set("b_enc", [dSae]);
  }
  if (cfg.architecture === "jumprelu") shapes.set("threshold", [dSae]);
  return shapes;
}

/** Feature activations of `rows` inputs: before the non-linearity and after it, both [rows, d_sae]. */
export interface SaeCodes {
  pre: Float32Array;
  post: Float32Array;
}

export class Sae {
  readonly cfg: SaeConfig;
  /** [d_sae, d_in]: feature j's decoder direction is row j. */
  readonly W_dec: Float32Array;
  readonly b_dec: Float32Array;
  /** log10 feature density from sparsity.safetensors, when the directory has it. */
  readonly logSparsity: Float32Array | null;
  /** activation_scaler.json's factor (1 without normalisation). */
  readonly scalingFactor: number;
  private readonly encoder: LinearOp;
  private readonly b_enc: Float32Array | null;
  private readonly threshold: Float32Array | null;
  private readonly b_gate: Float32Array | null;
  private readonly magScale: Float32Array | null;
  private readonly b_mag: Float32Array | null;

  constructor(opts: {
    cfg: SaeConfig;
    weights: SaeWeights;
    kernels: Kernels;
    logSparsity?: Float32Array | null;
    scalingFactor?: number;
  }) {
    const { cfg, weights: w, kernels } = opts;
    checkWeights(cfg, w);
    this.cfg = cfg;
    this.W_dec = w.W_dec;
    this.b_dec = w.b_dec;
    this.logSparsity = opts.logSparsity ?? null;
    this.scalingFactor = opts.scalingFactor ?? 1;
    const gated = cfg.architecture === "gated";
    // A gated SAE adds two different biases to one product (here); the others' b_enc goes to the kernel.
    this.encoder = kernels.linear(w.W_enc, cfg.dIn, cfg.dSae, gated ? null : w.b_enc);
    this.b_enc = gated ? null : w.b_enc!;
    this.threshold = cfg.architecture === "jumprelu" ? w.threshold! : null;
    this.b_gate = gated ? w.b_gate! : null;
    this.magScale = gated ? w.r_mag!.map(Math.exp) : null;
    this.b_mag = gated ? w.b_mag! : null;
  }

  get dIn(): number {
    return this.cfg.dIn;
  }
  get dSae(): number {
    return this.cfg.dSae;
  }

  /** W_enc [d_in, d_sae], exactly (read back from the kernels: not kept beside them). */
  encoderWeight(): Float32Array {
    return this.encoder.weight();
  }

  /** The weights under SAELens' names (W_enc read back from the kernels), e.g. to save them. */
  weights(): SaeWeights {
    const out: SaeWeights = { W_enc: this.encoderWeight(), W_dec: this.W_dec, b_dec: this.b_dec };
    if (this.b_enc) out.b_enc = this.b_enc;
    if (this.threshold) out.threshold = this.threshold;
    if (this.b_gate) {
      out.b_gate = this.b_gate;
      out.r_mag = this.magScale!.map(Math.log);
      out.b_mag = this.b_mag!;
    }
    return out;
  }

  /** Bytes of weights held (the kernels' W_enc plus W_dec and the vectors). */
  get heldBytes(): number {
    const vectors = [this.b_dec, this.b_enc, this.threshold, this.b_gate, this.magScale, this.b_mag];
    return (
      this.encoder.weightBytes + this.W_dec.byteLength + vectors.reduce((a, v) => a + (v?.byteLength ?? 0), 0)
    );
  }

  /** x [rows, d_in] → pre- and post-activation codes [rows, d_sae]. */
  encode(x: Float32Array, rows: number): SaeCodes {
    const { pre, gate } = this.preActivations(x, rows);
    return { pre, post: this.activate(pre, gate, rows) };
  }

  /**
   * x [rows, d_in] → the pre-activations [rows, d_sae] (gated: the magnitude path) and, for a gated SAE,
   * the gate's pre-activations x' W_enc + b_gate.
   */
  preActivations(x: Float32Array, rows: number): { pre: Float32Array; gate: Float32Array | null } {
    const { dIn, dSae } = this.cfg;
    if (x.length !== rows * dIn)
      throw new Error(`SAE input has ${x.length} values, expected ${rows} × ${dIn}`);
    const s = this.scalingFactor;
    const shift = this.cfg.applyBDecToInput ? this.b_dec : null;
    // x·1 − 0 is x exactly: without scaling or shift the kernel reads the caller's x, uncopied.
    let xin = x;
    if (s !== 1 || shift) {
      xin = new Float32Array(x.length);
      for (let r = 0; r < rows; r++) {
        const o = r * dIn;
        for (let i = 0; i < dIn; i++) xin[o + i] = x[o + i] * s - (shift ? shift[i] : 0);
      }
    }
    const prod = this.encoder.forward(xin, rows);
    if (this.b_gate) {
      const scale = this.magScale!;
      const pre = new Float32Array(rows * dSae);
      for (let r = 0; r < rows; r++) {
        const o = r * dSae;
        for (let j = 0; j < dSae; j++) {
          pre[o + j] = prod[o + j] * scale[j] + this.b_mag![j];
          prod[o + j] += this.b_gate[j];
        }
      }
      return { pre, gate: prod };
    }
    return { pre: prod, gate: null };
  }

  /** The non-linearity: pre-activations [rows, d_sae] (and a gated SAE's gate) → feature activations. */
  activate(pre: Float32Array, gate: Float32Array | null, rows: number): Float32Array {
    const { dSae } = this.cfg;
    const post = new Float32Array(rows * dSae);
    if (this.cfg.architecture === "gated") {
      for (let i = 0; i < pre.length; i++) post[i] = gate![i] > 0 && pre[i] > 0 ? pre[i] : 0;
    } else if (this.cfg.architecture === "topk") {
      const idx = new Int32Array(this.cfg.k!);
      for (let r = 0; r < rows; r++) topkRelu(pre, post, r * dSae, dSae, idx);
    } else {
      const thr = this.threshold;
      for (let i = 0; i < pre.length; i++) {
        const v = pre[i];
        post[i] = v > 0 && (!thr || v > thr[i % dSae]) ? v : 0;
      }
    }
    return post;
  }

  /** f [rows, d_sae] → x̂ [rows, d_in], adding only the decoder rows of non-zero features. */
  decode(f: Float32Array, rows: number): Float32Array {
    const { dIn, dSae } = this.cfg;
    if (f.length !== rows * dSae)
      throw new Error(`SAE codes have ${f.length} values, expected ${rows} × ${dSae}`);
    const W = this.W_dec;
    const inv = 1 / this.scalingFactor;
    const out = new Float32Array(rows * dIn);
    const acc = new Float64Array(dIn);
    for (let r = 0; r < rows; r++) {
      for (let i = 0; i < dIn; i++) acc[i] = this.b_dec[i];
      for (let j = 0; j < dSae; j++) {
        const a = f[r * dSae + j];
        if (a === 0) continue;
        const o = j * dIn;
        for (let i = 0; i < dIn; i++) acc[i] += a * W[o + i];
      }
      for (let i = 0; i < dIn; i++) out[r * dIn + i] = acc[i] * inv;
    }
    return out;
  }

  dispose(): void {
    this.encoder.dispose();
  }
}

/** post[o..o+n) = the k largest of pre[o..o+n), relu'd (post is zero elsewhere already); `idx` holds k. */
function topkRelu(pre: Float32Array, post: Float32Array, o: number, n: number, idx: Int32Array): void {
  const count = rowTopK(pre, o, n, idx.length, idx);
  for (let t = 0; t < count; t++) {
    const v = pre[o + idx[t]];
    if (v > 0) post[o + idx[t]] = v;
  }
}

function checkWeights(cfg: SaeConfig, w: SaeWeights): void {
  for (const [name, shape] of saeTensorShapes(cfg)) {
    const t = w[name];
    const n = shape.reduce((a, b) => a * b, 1);
    if (!t)
      throw new Error(
        `SAE weights lack ${name} [${shape.join(", ")}], which a ${cfg.architecture} SAE needs`,
      );
    if (t.length !== n) {
      throw new Error(`SAE tensor ${name} has ${t.length} values, but [${shape.join(", ")}] needs ${n}`);
    }
  }
  if (cfg.architecture === "topk" && (cfg.k === undefined || cfg.k > cfg.dSae)) {
    throw new Error(`TopK SAE has k = ${cfg.k}, which must be between 1 and d_sae = ${cfg.dSae}`);
  }
}
