/**
 * An independent, deliberately plain float64 forward pass for Gemma 2 (Hugging Face Gemma2ForCausalLM
 * semantics), for checking the engine. It shares no code with src/ except the safetensors reader (through
 * readHfTensors). Written from HF's Gemma2Model / Gemma2DecoderLayer / Gemma2Attention / Gemma2MLP /
 * Gemma2RMSNorm:
 *   - embeddings times hidden_size**0.5 (as a float32 number: the dtype of the hidden states);
 *   - RMSNorm x · rsqrt(mean(x²) + eps) · (1 + weight);
 *   - layer: h = x + post_attention_layernorm(attn(input_layernorm(x)));
 *            out = h + post_feedforward_layernorm(mlp(pre_feedforward_layernorm(h)));
 *   - attention: q·k · query_pre_attn_scalar**-0.5, then attn_logit_softcapping (tanh(s / c) · c), then the
 *     causal mask, and on sliding layers (layer_types, default: layer i sliding when (i + 1) % 2) keys with
 *     q_idx − kv_idx ≥ sliding_window masked too; grouped-query heads (query head h reads key/value head
 *     floor(h / (H / Hkv))); rotate-half rotary over the whole head_dim;
 *   - MLP down(gelu_tanh(gate(x)) · up(x));
 *   - logits = x · embed_tokensᵀ (tied) or lm_head, then final_logit_softcapping.
 * Gemma 3 (Gemma3ForCausalLM, `model_type: gemma3_text`) is the same with: q_norm / k_norm, a (1 + w)
 * RMSNorm over each head's q and k (head_dim wide) after the projection and before the rotation (hooks
 * attn.q_norm.* / attn.k_norm.*); rotary base rope_local_base_freq on sliding layers and rope_theta, with
 * linear rope_scaling (positions divided by its factor), on full ones; layers sliding unless (i + 1) is a
 * multiple of sliding_window_pattern (default 6); soft-caps null by default.
 * Hooks carry TransformerLens' names: ln1 = input_layernorm, ln1_post = post_attention_layernorm,
 * ln2 = pre_feedforward_layernorm, ln2_post = post_feedforward_layernorm; hook_attn_out / hook_mlp_out
 * after the post-norms; hook_normalized is the norm's output (x / scale · (1 + w)). `processed` is what
 * TransformerLens' fold_ln does to activations: ln1, ln2 and ln_final's hook_normalized lose the gain (it
 * lives in the next weights); writing weights are not centred (RMSNorm); the unembedding is centred
 * (logits minus their vocabulary mean) only when the final logits are not soft-capped.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { type RefTensor, readHfTensors } from "./llama-reference.ts";

export interface Gemma2RefConfig {
  D: number;
  L: number;
  H: number;
  Hkv: number;
  dh: number;
  dMlp: number;
  V: number;
  eps: number;
  base: number;
  queryPreAttnScalar: number;
  attnCap: number | null;
  finalCap: number | null;
  window: number | null;
  sliding: boolean[];
  tied: boolean;
  /** Gemma 3: q_norm / k_norm. */
  qkNorm: boolean;
  /** Gemma 3: the rotary base of sliding layers (null: `base` everywhere). */
  localBase: number | null;
  /** Gemma 3: rope_scaling's linear factor on full layers (1: none). */
  globalFactor: number;
}

type Json = Record<string, unknown>;

/** The fields of config.json, with Gemma2Config's (or Gemma3TextConfig's) defaults where absent. */
export function readGemma2RefConfig(dir: string): Gemma2RefConfig {
  const cfg = JSON.parse(readFileSync(join(dir, "config.json"), "utf8")) as Json;
  const gemma3 = cfg.model_type === "gemma3_text";
  const n = (k: string, fallback: number) => (typeof cfg[k] === "number" ? (cfg[k] as number) : fallback);
  const nullable = (k: string, fallback: number | null) =>
    cfg[k] === null || (cfg[k] === undefined && fallback === null) ? null : n(k, fallback ?? 0);
  const L = n("num_hidden_layers", 26);
  const types = cfg.layer_types as string[] | undefined;
  const pattern = gemma3 ? n("sliding_window_pattern", 6) : 2;
  const scaling = cfg.rope_scaling as
    | { rope_type?: string; type?: string; factor?: number }
    | null
    | undefined;
  return {
    D: n("hidden_size", 2304),
    L,
    H: n("num_attention_heads", 8),
    Hkv: n("num_key_value_heads", 4),
    dh: n("head_dim", 256),
    dMlp: n("intermediate_size", 9216),
    V: n("vocab_size", gemma3 ? 262208 : 256000),
    eps: n("rms_norm_eps", 1e-6),
    base: n("rope_theta", gemma3 ? 1_000_000 : 10000),
    queryPreAttnScalar: n("query_pre_attn_scalar", 256),
    attnCap: nullable("attn_logit_softcapping", gemma3 ? null : 50),
    finalCap: nullable("final_logit_softcapping", gemma3 ? null : 30),
    window: nullable("sliding_window", 4096),
    sliding: Array.from({ length: L }, (_, i) =>
      types && types.length > 0 ? types[i] === "sliding_attention" : (i + 1) % pattern !== 0,
    ),
    tied: cfg.tie_word_embeddings !== false,
    qkNorm: gemma3,
    localBase: gemma3 ? n("rope_local_base_freq", 10000) : null,
    globalFactor: scaling && (scaling.rope_type ?? scaling.type) === "linear" ? (scaling.factor ?? 1) : 1,
  };
}

const geluTanh = (x: number) => 0.5 * x * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (x + 0.044715 * x ** 3)));
const cap = (x: number, c: number | null) => (c === null ? x : Math.tanh(x / c) * c);

/** x [n, inDim] @ Wᵀ, W stored as torch's nn.Linear [outDim, inDim]. */
function linear(x: Float64Array, n: number, W: RefTensor): Float64Array {
  const [outDim, inDim] = W.shape;
  const y = new Float64Array(n * outDim);
  for (let r = 0; r < n; r++)
    for (let o = 0; o < outDim; o++) {
      let s = 0;
      for (let i = 0; i < inDim; i++) s += x[r * inDim + i] * W.data[o * inDim + i];
      y[r * outDim + o] = s;
    }
  return y;
}

export interface Gemma2RefOptions {
  processed?: boolean;
  /** Sees each activation [1, ...shape] before it is used downstream and may change it in place. */
  hook?: (name: string, act: RefTensor) => void;
}

export function gemma2ReferenceFromTensors(
  c: Gemma2RefConfig,
  t: Map<string, RefTensor>,
  tokens: readonly number[],
  opts: Gemma2RefOptions = {},
): Map<string, RefTensor> {
  const { D, H, Hkv, dh, dMlp, V, eps } = c;
  const P = tokens.length;
  const processed = opts.processed ?? false;
  const w = (name: string): RefTensor => {
    const x = t.get(name);
    if (!x) throw new Error(`gemma2-reference: no tensor ${name}`);
    return x;
  };
  const acts = new Map<string, RefTensor>();
  const put = (name: string, shape: number[], data: Float64Array) => {
    const act = { shape: [1, ...shape], data };
    opts.hook?.(name, act);
    acts.set(name, { shape: act.shape, data: data.slice() });
    return data;
  };

  /**
   * Gemma2RMSNorm with its two hooks over rows of `width` values (`shape`: the hook's shape without the
   * batch, its last axis `width`); `foldable` norms show x / scale when processed (fold_ln).
   */
  const rmsNorm = (
    prefix: string,
    hfName: string,
    x: Float64Array,
    foldable: boolean,
    shape: number[] = [P, D],
  ): Float64Array => {
    const width = shape[shape.length - 1];
    const rows = x.length / width;
    const sc = new Float64Array(rows);
    for (let r = 0; r < rows; r++) {
      let sq = 0;
      for (let d = 0; d < width; d++) sq += x[r * width + d] ** 2;
      sc[r] = Math.sqrt(sq / width + eps);
    }
    const scale = put(`${prefix}.hook_scale`, [...shape.slice(0, -1), 1], sc);
    const g = w(`${hfName}.weight`).data;
    const gain = (y: Float64Array) => y.map((v, i) => v * (1 + g[i % width]));
    const y = x.map((v, i) => v / scale[Math.floor(i / width)]);
    return processed && foldable
      ? gain(put(`${prefix}.hook_normalized`, shape, y))
      : put(`${prefix}.hook_normalized`, shape, gain(y));
  };

  /** Rotate-half rotary with base `base`; positions divided by `factor` (linear rope_scaling). */
  const rotary = (x: Float64Array, heads: number, base: number, factor: number): Float64Array => {
    const half = dh / 2;
    const out = x.slice();
    for (let p = 0; p < P; p++)
      for (let h = 0; h < heads; h++) {
        const o = (p * heads + h) * dh;
        for (let i = 0; i < half; i++) {
          const angle = p / factor / base ** ((2 * i) / dh);
          const [cs, sn] = [Math.cos(angle), Math.sin(angle)];
          out[o + i] = x[o + i] * cs - x[o + i + half] * sn;
          out[o + i + half] = x[o + i + half] * cs + x[o + i] * sn;
        }
      }
    return out;
  };

  const E = w("model.embed_tokens.weight");
  const normalizer = Math.fround(Math.sqrt(D));
  const embed = new Float64Array(P * D);
  tokens.forEach((tok, p) => {
    for (let d = 0; d < D; d++) embed[p * D + d] = E.data[tok * D + d] * normalizer;
  });
  let resid = put("hook_embed", [P, D], embed);

  for (let l = 0; l < c.L; l++) {
    const pre = `model.layers.${l}`;
    const hk = (s: string) => `blocks.${l}.${s}`;
    const residPre = put(hk("hook_resid_pre"), [P, D], resid.slice());
    const x1 = rmsNorm(hk("ln1"), `${pre}.input_layernorm`, residPre, true);
    const q = put(hk("attn.hook_q"), [P, H, dh], linear(x1, P, w(`${pre}.self_attn.q_proj.weight`)));
    const k = put(hk("attn.hook_k"), [P, Hkv, dh], linear(x1, P, w(`${pre}.self_attn.k_proj.weight`)));
    const v = put(hk("attn.hook_v"), [P, Hkv, dh], linear(x1, P, w(`${pre}.self_attn.v_proj.weight`)));
    const [qn, kn] = c.qkNorm
      ? [
          rmsNorm(hk("attn.q_norm"), `${pre}.self_attn.q_norm`, q, false, [P, H, dh]),
          rmsNorm(hk("attn.k_norm"), `${pre}.self_attn.k_norm`, k, false, [P, Hkv, dh]),
        ]
      : [q, k];
    const local = c.sliding[l] && c.localBase !== null;
    const [base, factor] = local ? [c.localBase as number, 1] : [c.base, c.globalFactor];
    const rq = put(hk("attn.hook_rot_q"), [P, H, dh], rotary(qn, H, base, factor));
    const rk = put(hk("attn.hook_rot_k"), [P, Hkv, dh], rotary(kn, Hkv, base, factor));
    const kvOf = (h: number) => Math.floor(h / (H / Hkv));
    const scaling = c.queryPreAttnScalar ** -0.5;
    const window = c.sliding[l] ? c.window : null;
    const scores = new Float64Array(H * P * P);
    for (let h = 0; h < H; h++)
      for (let i = 0; i < P; i++)
        for (let j = 0; j < P; j++) {
          let s = 0;
          for (let e = 0; e < dh; e++) s += rq[(i * H + h) * dh + e] * rk[(j * Hkv + kvOf(h)) * dh + e];
          const visible = j <= i && (window === null || i - j < window);
          scores[(h * P + i) * P + j] = visible ? cap(s * scaling, c.attnCap) : Number.NEGATIVE_INFINITY;
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
            z[(i * H + h) * dh + e] += pattern[(h * P + i) * P + j] * v[(j * Hkv + kvOf(h)) * dh + e];
    put(hk("attn.hook_z"), [P, H, dh], z);
    const o = linear(z, P, w(`${pre}.self_attn.o_proj.weight`));
    const attnOut = put(
      hk("hook_attn_out"),
      [P, D],
      rmsNorm(hk("ln1_post"), `${pre}.post_attention_layernorm`, o, false),
    );
    const residMid = put(
      hk("hook_resid_mid"),
      [P, D],
      residPre.map((x, i) => x + attnOut[i]),
    );
    const x2 = rmsNorm(hk("ln2"), `${pre}.pre_feedforward_layernorm`, residMid, true);
    const gate = put(hk("mlp.hook_pre"), [P, dMlp], linear(x2, P, w(`${pre}.mlp.gate_proj.weight`)));
    const up = put(hk("mlp.hook_pre_linear"), [P, dMlp], linear(x2, P, w(`${pre}.mlp.up_proj.weight`)));
    const post = put(
      hk("mlp.hook_post"),
      [P, dMlp],
      gate.map((g, i) => geluTanh(g) * up[i]),
    );
    const down = linear(post, P, w(`${pre}.mlp.down_proj.weight`));
    const mlpOut = put(
      hk("hook_mlp_out"),
      [P, D],
      rmsNorm(hk("ln2_post"), `${pre}.post_feedforward_layernorm`, down, false),
    );
    resid = put(
      hk("hook_resid_post"),
      [P, D],
      residMid.map((x, i) => x + mlpOut[i]),
    );
  }
  const xf = rmsNorm("ln_final", "model.norm", resid, true);
  const logits = linear(xf, P, c.tied ? E : w("lm_head.weight")).map((x) => cap(x, c.finalCap));
  // center_unembed (only without a final soft-cap, which a shift does not commute with): every logit at a
  // position shifts by their vocabulary mean.
  if (processed && c.finalCap === null)
    for (let p = 0; p < P; p++) {
      const row = logits.subarray(p * V, (p + 1) * V);
      const mean = row.reduce((a, b) => a + b, 0) / V;
      for (let i = 0; i < V; i++) row[i] -= mean;
    }
  put("logits", [P, V], logits);
  return acts;
}

export function gemma2ReferenceForward(dir: string, tokens: readonly number[], opts: Gemma2RefOptions = {}) {
  return gemma2ReferenceFromTensors(readGemma2RefConfig(dir), readHfTensors(dir), tokens, opts);
}
