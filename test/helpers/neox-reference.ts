/**
 * An independent, deliberately plain float64 forward pass for GPT-NeoX (Hugging Face GPTNeoXForCausalLM
 * semantics: Pythia), for checking the engine. It shares no code with src/ except the safetensors reader
 * (through readHfTensors), used only to get the stored arrays as numbers. Written from HF's
 * GPTNeoXLayer / GPTNeoXAttention / GPTNeoXMLP: LayerNorm with bias; the fused query_key_value viewed as
 * [.., heads, 3 · head_size] (q | k | v per head); rotate-half rotary on the first
 * int(head_size · rotary_pct) dimensions only, inverse frequencies 1 / base^(2i / rotary_ndims); scores
 * divided by sqrt(head_size); exact (erf) GELU; parallel residual x + attn(ln1(x)) + mlp(ln2(x)) or
 * sequential; embed_out untied.
 *
 * Hooks carry TransformerLens' names with circuitscope's two conventions: `hook_normalized` is the norm's
 * output (x_c / scale * w + b raw, x_c / scale processed), and a parallel block still fires
 * `hook_resid_mid` = resid_pre + attn_out (TransformerLens fires none there; the MLP does not read it).
 * `processed` is TransformerLens' default processing (fold_ln, center_writing_weights, center_unembed,
 * fold_value_biases), written as what it does to activations: writers to the residual are centred, v and
 * z lose the folded value bias (b_V + ln1.b · W_V; attn_out keeps it through b_O), the logits lose their vocabulary mean.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { type RefTensor, readHfTensors } from "./llama-reference.ts";

export interface NeoxRefConfig {
  D: number;
  L: number;
  H: number;
  dh: number;
  dMlp: number;
  V: number;
  eps: number;
  rotaryDims: number;
  base: number;
  parallel: boolean;
  tied: boolean;
  /** HF's ACT2FN name: "gelu" (erf) or "gelu_new" (tanh form). */
  act: string;
}

type Json = Record<string, unknown>;

export function readNeoxRefConfig(dir: string): NeoxRefConfig {
  const cfg = JSON.parse(readFileSync(join(dir, "config.json"), "utf8")) as Json;
  const n = (k: string, fallback: number) => (typeof cfg[k] === "number" ? (cfg[k] as number) : fallback);
  const D = n("hidden_size", 6144);
  const H = n("num_attention_heads", 64);
  const dh = D / H;
  return {
    D,
    L: n("num_hidden_layers", 44),
    H,
    dh,
    dMlp: n("intermediate_size", 24576),
    V: n("vocab_size", 50432),
    eps: n("layer_norm_eps", 1e-5),
    rotaryDims: Math.floor(dh * n("rotary_pct", 0.25)),
    base: n("rotary_emb_base", 10000),
    parallel: cfg.use_parallel_residual !== false,
    tied: cfg.tie_word_embeddings === true,
    act: typeof cfg.hidden_act === "string" ? cfg.hidden_act : "gelu",
  };
}

/** erf to float64 accuracy: its Maclaurin series near 0, Laplace's continued fraction for erfc beyond. */
export function erf(x: number): number {
  const a = Math.abs(x);
  if (a < 2.5) {
    let term = x;
    let sum = x;
    for (let k = 1; k < 100; k++) {
      term *= (-x * x) / k;
      const add = term / (2 * k + 1);
      sum += add;
      if (Math.abs(add) < 1e-17 * Math.abs(sum)) break;
    }
    return (2 / Math.sqrt(Math.PI)) * sum;
  }
  // erfc(a) = exp(-a²)/√π · 1 / (a + (1/2) / (a + 1 / (a + (3/2) / (a + ...)))), evaluated from the bottom.
  let f = a;
  for (let k = 120; k >= 1; k--) f = a + k / 2 / f;
  const erfc = Math.exp(-a * a) / Math.sqrt(Math.PI) / f;
  return Math.sign(x) * (1 - erfc);
}

const ACTS: Record<string, (x: number) => number> = {
  gelu: (x) => 0.5 * x * (1 + erf(x / Math.SQRT2)),
  gelu_new: (x) => 0.5 * x * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (x + 0.044715 * x ** 3))),
};

/** x [n, inDim] @ W^T + b, W stored as torch's nn.Linear [outDim, inDim]. */
function linear(x: Float64Array, n: number, W: RefTensor, b: RefTensor | null): Float64Array {
  const [outDim, inDim] = W.shape;
  const y = new Float64Array(n * outDim);
  for (let r = 0; r < n; r++)
    for (let o = 0; o < outDim; o++) {
      let s = b ? b.data[o] : 0;
      for (let i = 0; i < inDim; i++) s += x[r * inDim + i] * W.data[o * inDim + i];
      y[r * outDim + o] = s;
    }
  return y;
}

/** Each row of x [n, D] minus its mean. */
function centreRows(x: Float64Array, D: number): Float64Array {
  const out = new Float64Array(x.length);
  for (let o = 0; o < x.length; o += D) {
    let m = 0;
    for (let d = 0; d < D; d++) m += x[o + d];
    m /= D;
    for (let d = 0; d < D; d++) out[o + d] = x[o + d] - m;
  }
  return out;
}

export interface NeoxRefOptions {
  processed?: boolean;
  /** Sees each activation [1, ...shape] before it is used downstream and may change it in place. */
  hook?: (name: string, act: RefTensor) => void;
}

export function neoxReferenceForward(dir: string, tokens: readonly number[], opts: NeoxRefOptions = {}) {
  return neoxReferenceFromTensors(readNeoxRefConfig(dir), readHfTensors(dir), tokens, opts);
}

export function neoxReferenceFromTensors(
  c: NeoxRefConfig,
  t: Map<string, RefTensor>,
  tokens: readonly number[],
  opts: NeoxRefOptions = {},
): Map<string, RefTensor> {
  const { D, H, dh, dMlp, V, eps } = c;
  const P = tokens.length;
  const act = ACTS[c.act];
  if (!act) throw new Error(`neox-reference: hidden_act ${c.act} is not implemented here`);
  const processed = opts.processed ?? false;
  const w = (name: string): RefTensor => {
    const x = t.get(name);
    if (!x) throw new Error(`neox-reference: no tensor ${name}`);
    return x;
  };
  const acts = new Map<string, RefTensor>();
  const put = (name: string, shape: number[], data: Float64Array) => {
    const act = { shape: [1, ...shape], data };
    opts.hook?.(name, act);
    acts.set(name, { shape: act.shape, data: data.slice() });
    return data;
  };
  // center_writing_weights: whatever writes to the residual is centred (LayerNorm removes the mean anyway).
  const writes = (x: Float64Array) => (processed ? centreRows(x, D) : x);

  /** LayerNorm with its two hooks; returns what the next linear reads (x_c / scale * w + b either way). */
  const layerNorm = (prefix: string, hfName: string, x: Float64Array): Float64Array => {
    const xc = centreRows(x, D);
    const sc = new Float64Array(P);
    for (let p = 0; p < P; p++) {
      let sq = 0;
      for (let d = 0; d < D; d++) sq += xc[p * D + d] ** 2;
      sc[p] = Math.sqrt(sq / D + eps);
    }
    const scale = put(`${prefix}.hook_scale`, [P, 1], sc);
    const g = w(`${hfName}.weight`).data;
    const b = w(`${hfName}.bias`).data;
    const affine = (y: Float64Array) => y.map((v, i) => v * g[i % D] + b[i % D]);
    const y = xc.map((v, i) => v / scale[Math.floor(i / D)]);
    // Folded, the hook sees x_c / scale and the affine part lives in the next weights: same output.
    // fold_ln also centres the folded weights over d_model, which is reading the hook's value centred
    // (equal forward, since x_c / scale has zero mean; it shows in gradients and under patching).
    return processed
      ? affine(centreRows(put(`${prefix}.hook_normalized`, [P, D], y), D))
      : put(`${prefix}.hook_normalized`, [P, D], affine(y));
  };

  const rotary = (x: Float64Array): Float64Array => {
    const half = c.rotaryDims / 2;
    const out = x.slice();
    for (let p = 0; p < P; p++)
      for (let h = 0; h < H; h++) {
        const o = (p * H + h) * dh;
        for (let i = 0; i < half; i++) {
          const angle = p / c.base ** ((2 * i) / c.rotaryDims);
          const [cs, sn] = [Math.cos(angle), Math.sin(angle)];
          out[o + i] = x[o + i] * cs - x[o + i + half] * sn;
          out[o + i + half] = x[o + i + half] * cs + x[o + i] * sn;
        }
      }
    return out;
  };

  const E = w("gpt_neox.embed_in.weight");
  const embed = new Float64Array(P * D);
  tokens.forEach((tok, p) => {
    embed.set(E.data.subarray(tok * D, (tok + 1) * D), p * D);
  });
  let resid = put("hook_embed", [P, D], writes(embed));

  for (let l = 0; l < c.L; l++) {
    const pre = `gpt_neox.layers.${l}`;
    const hk = (s: string) => `blocks.${l}.${s}`;
    const residPre = put(hk("hook_resid_pre"), [P, D], resid.slice());
    const x1 = layerNorm(hk("ln1"), `${pre}.input_layernorm`, residPre);
    // query_key_value's output viewed as [P, H, 3 dh]: q_h | k_h | v_h.
    const fused = linear(
      x1,
      P,
      w(`${pre}.attention.query_key_value.weight`),
      w(`${pre}.attention.query_key_value.bias`),
    );
    // The value bias as folded: b_V plus ln1's bias through W_V (the fused output of a normalised zero).
    const bias = linear(
      w(`${pre}.input_layernorm.bias`).data,
      1,
      w(`${pre}.attention.query_key_value.weight`),
      w(`${pre}.attention.query_key_value.bias`),
    );
    const part = (which: number, dropBias: boolean) => {
      const out = new Float64Array(P * H * dh);
      for (let p = 0; p < P; p++)
        for (let h = 0; h < H; h++)
          for (let e = 0; e < dh; e++) {
            const j = h * 3 * dh + which * dh + e;
            out[(p * H + h) * dh + e] = fused[p * 3 * D + j] - (dropBias ? bias[j] : 0);
          }
      return out;
    };
    const q = put(hk("attn.hook_q"), [P, H, dh], part(0, false));
    const k = put(hk("attn.hook_k"), [P, H, dh], part(1, false));
    // fold_value_biases: v and z lose b_V; b_O gains b_V · W_O below.
    const v = put(hk("attn.hook_v"), [P, H, dh], part(2, processed));
    const rq = put(hk("attn.hook_rot_q"), [P, H, dh], rotary(q));
    const rk = put(hk("attn.hook_rot_k"), [P, H, dh], rotary(k));
    const scores = new Float64Array(H * P * P);
    for (let h = 0; h < H; h++)
      for (let i = 0; i < P; i++)
        for (let j = 0; j < P; j++) {
          let s = 0;
          for (let e = 0; e < dh; e++) s += rq[(i * H + h) * dh + e] * rk[(j * H + h) * dh + e];
          scores[(h * P + i) * P + j] = j <= i ? s / Math.sqrt(dh) : Number.NEGATIVE_INFINITY;
        }
    put(hk("attn.hook_attn_scores"), [H, P, P], scores);
    const pattern = new Float64Array(H * P * P);
    for (let r = 0; r < H * P; r++) {
      const row = scores.subarray(r * P, (r + 1) * P);
      const max = Math.max(...row);
      let sum = 0;
      for (let j = 0; j < P; j++) sum += Math.exp(row[j] - max);
      for (let j = 0; j < P; j++) pattern[r * P + j] = Math.exp(row[j] - max) / sum;
    }
    put(hk("attn.hook_pattern"), [H, P, P], pattern);
    const z = new Float64Array(P * H * dh);
    for (let h = 0; h < H; h++)
      for (let i = 0; i < P; i++)
        for (let j = 0; j < P; j++)
          for (let e = 0; e < dh; e++)
            z[(i * H + h) * dh + e] += pattern[(h * P + i) * P + j] * v[(j * H + h) * dh + e];
    put(hk("attn.hook_z"), [P, H, dh], z);
    const Wo = w(`${pre}.attention.dense.weight`);
    let attnOut = linear(z, P, Wo, w(`${pre}.attention.dense.bias`));
    if (processed) {
      const zBias = new Float64Array(H * dh);
      for (let h = 0; h < H; h++)
        for (let e = 0; e < dh; e++) zBias[h * dh + e] = bias[h * 3 * dh + 2 * dh + e];
      const add = linear(zBias, 1, Wo, null);
      attnOut = attnOut.map((x, i) => x + add[i % D]);
    }
    attnOut = put(hk("hook_attn_out"), [P, D], writes(attnOut));
    const residMid = put(
      hk("hook_resid_mid"),
      [P, D],
      residPre.map((x, i) => x + attnOut[i]),
    );
    // GPTNeoXLayer: the MLP reads the block's input (parallel) or the residual after attention.
    const x2 = layerNorm(hk("ln2"), `${pre}.post_attention_layernorm`, c.parallel ? residPre : residMid);
    const preAct = put(
      hk("mlp.hook_pre"),
      [P, dMlp],
      linear(x2, P, w(`${pre}.mlp.dense_h_to_4h.weight`), w(`${pre}.mlp.dense_h_to_4h.bias`)),
    );
    const post = put(hk("mlp.hook_post"), [P, dMlp], preAct.map(act));
    const mlpOut = put(
      hk("hook_mlp_out"),
      [P, D],
      writes(linear(post, P, w(`${pre}.mlp.dense_4h_to_h.weight`), w(`${pre}.mlp.dense_4h_to_h.bias`))),
    );
    resid = put(
      hk("hook_resid_post"),
      [P, D],
      residMid.map((x, i) => x + mlpOut[i]),
    );
  }
  const xf = layerNorm("ln_final", "gpt_neox.final_layer_norm", resid);
  const logits = linear(xf, P, c.tied ? E : w("embed_out.weight"), null);
  // center_unembed: every logit at a position shifts by their vocabulary mean.
  put("logits", [P, V], processed ? centreRows(logits, V) : logits);
  return acts;
}
