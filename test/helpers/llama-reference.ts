/**
 * An independent, deliberately plain float64 forward pass for the Llama family (Hugging Face
 * LlamaForCausalLM / MistralForCausalLM / Qwen2ForCausalLM semantics), for checking the engine.
 *
 * It shares no code with src/ except the safetensors reader, used only to get the stored arrays as
 * numbers. Everything else is re-derived from config.json and the Hugging Face tensor names: RMSNorm,
 * rotate-half rotary embeddings (rope_theta, head_dim, `linear` and `llama3` scaling), grouped-query
 * attention, q/k/v (and o) biases, the SwiGLU MLP, tied or untied lm_head. Each intermediate is returned
 * under its TransformerLens hook name, with TransformerLens' conventions except one: `hook_normalized` is
 * the norm's output x / scale * w, as circuitscope fires it for LayerNorm too (TransformerLens fires it
 * before the weight; the two agree once weights are processed: w is folded into the next weights and the
 * hook sees x / scale).
 * `hook_k`/`hook_v`/`hook_rot_k` have the key/value head count, `hook_q`/`hook_k`
 * are before rotation and `hook_rot_q`/`hook_rot_k` after, `hook_attn_scores` are scaled and -inf above the
 * diagonal, `mlp.hook_pre` is the gate projection before SiLU and `mlp.hook_pre_linear` the up projection.
 */
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { SafetensorsReader } from "../../src/weights/safetensors.ts";

/** A float64 activation with its shape (batch first, batch = 1). */
export interface RefTensor {
  shape: number[];
  data: Float64Array;
}

export interface LlamaRefConfig {
  modelType: string;
  D: number;
  L: number;
  H: number;
  Hkv: number;
  dh: number;
  dMlp: number;
  V: number;
  eps: number;
  tied: boolean;
  /** Per rotary frequency pair i < dh/2: the (scaled) inverse frequency. */
  invFreq: Float64Array;
  /** Mistral: a query sees only keys fewer than this many positions back (itself included); null = all. */
  slidingWindow: number | null;
  qkvBias: boolean;
  oBias: boolean;
  mlpBias: boolean;
}

type Json = Record<string, unknown>;

function num(cfg: Json, key: string, fallback?: number): number {
  const v = cfg[key];
  if (typeof v === "number") return v;
  if (fallback !== undefined) return fallback;
  throw new Error(`llama-reference: config.json has no numeric "${key}"`);
}

/** Inverse rotary frequencies as Hugging Face's rope init functions compute them (default, linear, llama3). */
export function referenceInvFreq(cfg: Json, dh: number): Float64Array {
  const params = (cfg.rope_parameters ?? cfg.rope_scaling ?? null) as Json | null;
  const theta =
    typeof cfg.rope_theta === "number"
      ? cfg.rope_theta
      : typeof params?.rope_theta === "number"
        ? params.rope_theta
        : 10000;
  const half = dh / 2;
  const inv = new Float64Array(half);
  for (let i = 0; i < half; i++) inv[i] = 1 / theta ** ((2 * i) / dh);
  const type = (params?.rope_type ?? params?.type ?? "default") as string;
  if (type === "default") return inv;
  const factor = params!.factor as number;
  if (type === "linear") return inv.map((f) => f / factor);
  if (type === "llama3") {
    const low = params!.low_freq_factor as number;
    const high = params!.high_freq_factor as number;
    const oldCtx = params!.original_max_position_embeddings as number;
    const lowWavelen = oldCtx / low;
    const highWavelen = oldCtx / high;
    return inv.map((f) => {
      const wavelen = (2 * Math.PI) / f;
      if (wavelen < highWavelen) return f; // high frequencies: unchanged
      if (wavelen > lowWavelen) return f / factor; // low frequencies: scaled down
      const smooth = (oldCtx / wavelen - low) / (high - low);
      return (1 - smooth) * (f / factor) + smooth * f;
    });
  }
  throw new Error(`llama-reference: rope type "${type}" is not implemented here`);
}

export function readLlamaRefConfig(dir: string): LlamaRefConfig {
  const cfg = JSON.parse(readFileSync(join(dir, "config.json"), "utf8")) as Json;
  const modelType = String(cfg.model_type);
  const D = num(cfg, "hidden_size");
  const H = num(cfg, "num_attention_heads");
  const dh = num(cfg, "head_dim", D / H);
  const isQwen2 = modelType === "qwen2";
  const attentionBias = cfg.attention_bias === true;
  return {
    modelType,
    D,
    L: num(cfg, "num_hidden_layers"),
    H,
    // Absent: LlamaConfig uses H, MistralConfig 8, Qwen2Config 32 (an explicit null means H).
    Hkv: num(
      cfg,
      "num_key_value_heads",
      cfg.num_key_value_heads === null || modelType === "llama" ? H : modelType === "mistral" ? 8 : 32,
    ),
    dh,
    dMlp: num(cfg, "intermediate_size"),
    V: num(cfg, "vocab_size"),
    eps: num(cfg, "rms_norm_eps"),
    // HF's Llama/Mistral/Qwen2 configs all default tie_word_embeddings to false.
    tied: cfg.tie_word_embeddings === true,
    invFreq: referenceInvFreq(cfg, dh),
    slidingWindow:
      modelType !== "mistral" || cfg.sliding_window === null
        ? null
        : ((cfg.sliding_window as number | undefined) ?? 4096),
    // Qwen2 always has q/k/v biases and never an o bias; Llama has all four when attention_bias.
    qkvBias: isQwen2 || attentionBias,
    oBias: !isQwen2 && attentionBias,
    mlpBias: cfg.mlp_bias === true,
  };
}

/** Every stored tensor by HF name, as float64 (single file or a sharded index). */
export function readHfTensors(dir: string): Map<string, RefTensor> {
  const files = existsSync(join(dir, "model.safetensors"))
    ? ["model.safetensors"]
    : [
        ...new Set(
          Object.values(
            (
              JSON.parse(readFileSync(join(dir, "model.safetensors.index.json"), "utf8")) as {
                weight_map: Record<string, string>;
              }
            ).weight_map,
          ),
        ),
      ];
  const out = new Map<string, RefTensor>();
  for (const file of files) {
    const reader = SafetensorsReader.open(join(dir, file));
    for (const [name, info] of reader.tensors)
      out.set(name, { shape: [...info.shape], data: Float64Array.from(reader.readFloat32(name)) });
    reader.close();
  }
  return out;
}

/** x [n, inDim] @ W^T (+ b), with W stored as HF's nn.Linear [outDim, inDim]. */
function linear(x: Float64Array, n: number, W: RefTensor, b: RefTensor | undefined): Float64Array {
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

/** HF LlamaRMSNorm's statistic, TransformerLens' hook_scale: sqrt(mean(x²) + eps) per row. */
function rmsScale(x: Float64Array, n: number, D: number, eps: number): Float64Array {
  const scale = new Float64Array(n);
  for (let r = 0; r < n; r++) {
    let sq = 0;
    for (let d = 0; d < D; d++) sq += x[r * D + d] ** 2;
    scale[r] = Math.sqrt(sq / D + eps);
  }
  return scale;
}

/** x / scale * w per row: the RMSNorm's output (w = null: folded away by processing). */
function normalize(x: Float64Array, scale: Float64Array, w: RefTensor | null, D: number): Float64Array {
  return x.map((v, i) => (v / scale[Math.floor(i / D)]) * (w ? w.data[i % D] : 1));
}

function timesWeight(y: Float64Array, w: RefTensor | null, D: number): Float64Array {
  return w ? y.map((v, i) => v * w.data[i % D]) : y;
}

/**
 * Rotate-half rotary embedding of x [P, heads, dh] at positions pos0..: pairs (i, i + dh/2) rotate by
 * angle pos * invFreq[i]: x'_i = x_i cos - x_{i+h} sin, x'_{i+h} = x_{i+h} cos + x_i sin.
 */
function rotate(x: Float64Array, P: number, heads: number, dh: number, invFreq: Float64Array, pos0: number) {
  const half = dh / 2;
  const out = new Float64Array(x.length);
  for (let p = 0; p < P; p++)
    for (let h = 0; h < heads; h++) {
      const o = (p * heads + h) * dh;
      for (let i = 0; i < half; i++) {
        const angle = (pos0 + p) * invFreq[i];
        const c = Math.cos(angle);
        const s = Math.sin(angle);
        const a = x[o + i];
        const b = x[o + i + half];
        out[o + i] = a * c - b * s;
        out[o + i + half] = b * c + a * s;
      }
    }
  return out;
}

const silu = (x: number) => x / (1 + Math.exp(-x));

export interface LlamaRefOptions {
  /** TransformerLens' default processing as it applies to RMSNorm models: logits minus their vocab mean, value biases folded. */
  processed?: boolean;
  /** Sees each activation [1, ...shape] before it is used downstream and may change it in place (patching). */
  hook?: (name: string, act: RefTensor) => void;
}

/**
 * The forward pass of one prompt (no padding, batch 1): every TransformerLens hook of the Llama family,
 * plus `logits` [1, P, V].
 */
export function llamaReferenceForward(
  dir: string,
  tokens: readonly number[],
  opts: LlamaRefOptions = {},
): Map<string, RefTensor> {
  const c = readLlamaRefConfig(dir);
  return llamaReferenceFromTensors(c, readHfTensors(dir), tokens, opts);
}

export function llamaReferenceFromTensors(
  c: LlamaRefConfig,
  t: Map<string, RefTensor>,
  tokens: readonly number[],
  opts: LlamaRefOptions = {},
): Map<string, RefTensor> {
  const { D, H, Hkv, dh, dMlp, V, eps } = c;
  const P = tokens.length;
  const group = H / Hkv;
  const w = (name: string): RefTensor => {
    const x = t.get(name);
    if (!x) throw new Error(`llama-reference: no tensor ${name}`);
    return x;
  };
  const maybe = (name: string, present: boolean) => (present ? w(name) : undefined);
  // Processing folds each norm's weight into the weights that read it: the hook then sees x / scale.
  const unfolded = (g: RefTensor) => (opts.processed ? null : g);
  const folded = (g: RefTensor) => (opts.processed ? g : null);
  const acts = new Map<string, RefTensor>();
  // Every activation passes through the hook (which may change it) before anything reads it; the record is a copy.
  const put = (name: string, shape: number[], data: Float64Array) => {
    const act = { shape: [1, ...shape], data };
    opts.hook?.(name, act);
    acts.set(name, { shape: act.shape, data: data.slice() });
    return data;
  };

  const E = w("model.embed_tokens.weight");
  const embed = new Float64Array(P * D);
  tokens.forEach((tok, p) => {
    embed.set(E.data.subarray(tok * D, (tok + 1) * D), p * D);
  });
  let resid = put("hook_embed", [P, D], embed);

  for (let l = 0; l < c.L; l++) {
    const pre = `model.layers.${l}`;
    const hk = (s: string) => `blocks.${l}.${s}`;
    resid = put(hk("hook_resid_pre"), [P, D], resid.slice());

    const s1 = put(hk("ln1.hook_scale"), [P, 1], rmsScale(resid, P, D, eps));
    const w1 = w(`${pre}.input_layernorm.weight`);
    const x1 = timesWeight(
      put(hk("ln1.hook_normalized"), [P, D], normalize(resid, s1, unfolded(w1), D)),
      folded(w1),
      D,
    );

    const bias = (p: string) => maybe(`${pre}.self_attn.${p}.bias`, c.qkvBias);
    const q = put(
      hk("attn.hook_q"),
      [P, H, dh],
      linear(x1, P, w(`${pre}.self_attn.q_proj.weight`), bias("q_proj")),
    );
    const k = put(
      hk("attn.hook_k"),
      [P, Hkv, dh],
      linear(x1, P, w(`${pre}.self_attn.k_proj.weight`), bias("k_proj")),
    );
    const vBias = bias("v_proj");
    let v = linear(x1, P, w(`${pre}.self_attn.v_proj.weight`), vBias);
    // Folding value biases moves b_V into b_O: v (and z) lose it, attn_out is unchanged.
    if (opts.processed && vBias) v = v.map((x, i) => x - vBias.data[i % (Hkv * dh)]);
    v = put(hk("attn.hook_v"), [P, Hkv, dh], v);
    const rq = put(hk("attn.hook_rot_q"), [P, H, dh], rotate(q, P, H, dh, c.invFreq, 0));
    const rk = put(hk("attn.hook_rot_k"), [P, Hkv, dh], rotate(k, P, Hkv, dh, c.invFreq, 0));

    const kvHead = (h: number) => Math.floor(h / group); // HF repeat_kv / TransformerLens repeat_interleave
    const scores = new Float64Array(H * P * P);
    for (let h = 0; h < H; h++)
      for (let i = 0; i < P; i++)
        for (let j = 0; j < P; j++) {
          let s = 0;
          for (let e = 0; e < dh; e++) s += rq[(i * H + h) * dh + e] * rk[(j * Hkv + kvHead(h)) * dh + e];
          const visible = j <= i && (c.slidingWindow === null || i - j < c.slidingWindow);
          scores[(h * P + i) * P + j] = visible ? s / Math.sqrt(dh) : Number.NEGATIVE_INFINITY;
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
            z[(i * H + h) * dh + e] += pattern[(h * P + i) * P + j] * v[(j * Hkv + kvHead(h)) * dh + e];
    put(hk("attn.hook_z"), [P, H, dh], z);
    let attnOut = linear(
      z,
      P,
      w(`${pre}.self_attn.o_proj.weight`),
      maybe(`${pre}.self_attn.o_proj.bias`, c.oBias),
    );
    if (opts.processed && vBias) {
      // z lost b_V above; the folded b_O = b_O + Σ b_V W_O restores attn_out exactly.
      const Wo = w(`${pre}.self_attn.o_proj.weight`);
      const zBias = new Float64Array(H * dh);
      for (let h = 0; h < H; h++)
        for (let e = 0; e < dh; e++) zBias[h * dh + e] = vBias.data[Math.floor(h / group) * dh + e];
      const add = linear(zBias, 1, Wo, undefined);
      attnOut = attnOut.map((x, i) => x + add[i % D]);
    }
    attnOut = put(hk("hook_attn_out"), [P, D], attnOut);
    resid = put(
      hk("hook_resid_mid"),
      [P, D],
      resid.map((x, i) => x + attnOut[i]),
    );

    const s2 = put(hk("ln2.hook_scale"), [P, 1], rmsScale(resid, P, D, eps));
    const w2 = w(`${pre}.post_attention_layernorm.weight`);
    const x2 = timesWeight(
      put(hk("ln2.hook_normalized"), [P, D], normalize(resid, s2, unfolded(w2), D)),
      folded(w2),
      D,
    );
    const mb = (p: string) => maybe(`${pre}.mlp.${p}.bias`, c.mlpBias);
    const gate = put(
      hk("mlp.hook_pre"),
      [P, dMlp],
      linear(x2, P, w(`${pre}.mlp.gate_proj.weight`), mb("gate_proj")),
    );
    const up = put(
      hk("mlp.hook_pre_linear"),
      [P, dMlp],
      linear(x2, P, w(`${pre}.mlp.up_proj.weight`), mb("up_proj")),
    );
    const post = put(
      hk("mlp.hook_post"),
      [P, dMlp],
      gate.map((g, i) => silu(g) * up[i]),
    );
    const mlpOut = put(
      hk("hook_mlp_out"),
      [P, D],
      linear(post, P, w(`${pre}.mlp.down_proj.weight`), mb("down_proj")),
    );
    resid = put(
      hk("hook_resid_post"),
      [P, D],
      resid.map((x, i) => x + mlpOut[i]),
    );
  }

  const sf = put("ln_final.hook_scale", [P, 1], rmsScale(resid, P, D, eps));
  const wf = w("model.norm.weight");
  const xf = timesWeight(
    put("ln_final.hook_normalized", [P, D], normalize(resid, sf, unfolded(wf), D)),
    folded(wf),
    D,
  );
  const lmHead = c.tied ? E : w("lm_head.weight");
  const logits = linear(xf, P, lmHead, undefined);
  if (opts.processed) {
    // centre_unembed: every logit at a position shifts by the same constant, their vocabulary mean.
    for (let p = 0; p < P; p++) {
      let mean = 0;
      for (let i = 0; i < V; i++) mean += logits[p * V + i];
      mean /= V;
      for (let i = 0; i < V; i++) logits[p * V + i] -= mean;
    }
  }
  put("logits", [P, V], logits);
  return acts;
}

/** Greedy decoding with the reference forward (recomputes the whole prefix each step: slow, but plain). */
export function referenceGreedy(dir: string, prompt: readonly number[], steps: number): number[] {
  const c = readLlamaRefConfig(dir);
  const t = readHfTensors(dir);
  const tokens = [...prompt];
  for (let s = 0; s < steps; s++) {
    const logits = llamaReferenceFromTensors(c, t, tokens).get("logits")!;
    const P = tokens.length;
    let best = 0;
    for (let i = 1; i < c.V; i++)
      if (logits.data[(P - 1) * c.V + i] > logits.data[(P - 1) * c.V + best]) best = i;
    tokens.push(best);
  }
  return tokens;
}

/**
 * Token ids → text through tokenizer.json's vocabulary alone (SentencePiece conventions: `▁` is a space,
 * `<0xNN>` a raw byte, the first leading space dropped), independent of any tokenizer library.
 */
export function referenceDecode(dir: string, ids: readonly number[]): string {
  const tok = JSON.parse(readFileSync(join(dir, "tokenizer.json"), "utf8")) as {
    model: { vocab: Record<string, number> };
    added_tokens?: { id: number; content: string; special?: boolean }[];
  };
  const byId = new Map<number, string>();
  for (const [piece, id] of Object.entries(tok.model.vocab)) byId.set(id, piece);
  const special = new Set((tok.added_tokens ?? []).filter((a) => a.special).map((a) => a.id));
  const bytes: number[] = [];
  for (const id of ids) {
    if (special.has(id)) continue;
    const piece = byId.get(id);
    if (piece === undefined) throw new Error(`referenceDecode: id ${id} is not in the vocabulary`);
    const m = /^<0x([0-9A-Fa-f]{2})>$/.exec(piece);
    if (m) bytes.push(Number.parseInt(m[1], 16));
    else bytes.push(...Buffer.from(piece.replaceAll("▁", " "), "utf8"));
  }
  const text = Buffer.from(bytes).toString("utf8");
  return text.startsWith(" ") ? text.slice(1) : text;
}

/**
 * llama2.c's encoder (`encode` in run.c), independent of any tokenizer library: BOS, a dummy-prefix space,
 * each code point its piece (or its UTF-8 bytes as `<0xNN>` pieces), then repeatedly merge the adjacent pair
 * whose concatenation is the best-scoring piece. SentencePiece stores BPE pieces best score first, so the
 * score here is minus the piece's id.
 */
export function referenceEncode(dir: string, text: string): number[] {
  const tok = JSON.parse(readFileSync(join(dir, "tokenizer.json"), "utf8")) as {
    model: { vocab: Record<string, number> };
  };
  const vocab = new Map(Object.entries(tok.model.vocab));
  const pieces: string[] = [];
  const ids: number[] = [];
  for (const ch of text === "" ? "" : ` ${text}`.replaceAll(" ", "▁")) {
    const id = vocab.get(ch);
    if (id !== undefined) {
      pieces.push(ch);
      ids.push(id);
    } else
      for (const byte of Buffer.from(ch, "utf8")) {
        const piece = `<0x${byte.toString(16).toUpperCase().padStart(2, "0")}>`;
        pieces.push(piece);
        ids.push(vocab.get(piece)!);
      }
  }
  for (;;) {
    let best = -1;
    let bestId = Number.POSITIVE_INFINITY;
    for (let i = 0; i + 1 < pieces.length; i++) {
      const id = vocab.get(pieces[i] + pieces[i + 1]);
      if (id !== undefined && id < bestId) {
        bestId = id;
        best = i;
      }
    }
    if (best < 0) break;
    pieces.splice(best, 2, pieces[best] + pieces[best + 1]);
    ids.splice(best, 2, bestId);
  }
  return [1, ...ids];
}

/**
 * Each head's direct logit attribution at the final position, [L * H] layer-major: the head's write
 * z[h] @ o_proj[:, h]ᵀ dotted with (lm_head[answer] − lm_head[wrong]) ∘ norm weight, divided by the final
 * RMSNorm's scale there (no centring: RMSNorm does not subtract the mean).
 */
export function referenceHeadDla(
  c: LlamaRefConfig,
  t: Map<string, RefTensor>,
  acts: Map<string, RefTensor>,
  answer: number,
  wrong: number,
): Float64Array {
  const { D, H, dh, L } = c;
  const last = acts.get("hook_embed")!.shape[1] - 1;
  const head = t.get(c.tied ? "model.embed_tokens.weight" : "lm_head.weight")!.data;
  const normW = t.get("model.norm.weight")!.data;
  const dir = Float64Array.from(
    { length: D },
    (_, d) => (head[answer * D + d] - head[wrong * D + d]) * normW[d],
  );
  const scale = acts.get("ln_final.hook_scale")!.data[last];
  const out = new Float64Array(L * H);
  for (let l = 0; l < L; l++) {
    const z = acts.get(`blocks.${l}.attn.hook_z`)!.data;
    const Wo = t.get(`model.layers.${l}.self_attn.o_proj.weight`)!.data; // [D, H*dh]
    for (let h = 0; h < H; h++) {
      let dot = 0;
      for (let d = 0; d < D; d++) {
        let write = 0;
        for (let e = 0; e < dh; e++) write += z[(last * H + h) * dh + e] * Wo[d * H * dh + h * dh + e];
        dot += write * dir[d];
      }
      out[l * H + h] = dot / scale;
    }
  }
  return out;
}

/** The reference's logit(answer) − logit(wrong) at the final position of a run. */
export function referenceLogitDiff(acts: Map<string, RefTensor>, answer: number, wrong: number): number {
  const logits = acts.get("logits")!;
  const [, P, V] = logits.shape;
  return logits.data[(P - 1) * V + answer] - logits.data[(P - 1) * V + wrong];
}

/**
 * Activation patching done in the reference: the corrupted run with the clean run's values written into
 * the elements of `hook` that `pick` selects (flat indices of the [1, ...] activation); returns the logit
 * difference.
 */
export function referencePatchedLogitDiff(
  c: LlamaRefConfig,
  t: Map<string, RefTensor>,
  p: { clean: Map<string, RefTensor>; corruptedTokens: readonly number[]; answer: number; wrong: number },
  hook: string,
  pick: (flatIndex: number) => boolean,
): number {
  const src = p.clean.get(hook)!.data;
  const acts = llamaReferenceFromTensors(c, t, p.corruptedTokens, {
    hook: (name, act) => {
      if (name !== hook) return;
      for (let i = 0; i < act.data.length; i++) if (pick(i)) act.data[i] = src[i];
    },
  });
  return referenceLogitDiff(acts, p.answer, p.wrong);
}
