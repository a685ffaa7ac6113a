/**
 * Random checkpoints of every Llama-family variant (GQA, MQA, Qwen2 biases, tied and untied unembedding,
 * head_dim ≠ d_model / n_heads, llama3 and linear rope scaling, Mistral's sliding window, F16/BF16 storage):
 * the fast and the reference backends agree on every hook, weight processing changes nothing it should
 * not, and bad configs fail before any weights are read.
 */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, unlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import { HookedTransformer, type LoadOptions } from "../../src/model/hooked-transformer.ts";
import { Rotary, rotaryInvFreq } from "../../src/model/rotary.ts";
import type { Tensor } from "../../src/tensor/tensor.ts";
import { loadCheckpoint, makeRandomCheckpoint } from "../../src/weights/checkpoint.ts";
import { parseHfConfig } from "../../src/weights/families/index.ts";
import { LLAMA_BASE_CONFIG, LLAMA_VARIANTS, makeVariantCheckpoint } from "../helpers/llama-variants.ts";
import { maxDiffFromCentred } from "../helpers/logits.ts";

const root = mkdtempSync(join(tmpdir(), "circuitscope-llama-families-"));
after(() => rmSync(root, { recursive: true, force: true }));

function load(dir: string, opts: LoadOptions): HookedTransformer {
  return HookedTransformer.fromCheckpoint(loadCheckpoint(dir), opts);
}

/** Two prompts of different lengths (so padding and per-prompt lengths are exercised). */
const PROMPTS = [
  [1, 17, 300, 45, 9, 88, 120, 511, 3, 64],
  [1, 400, 2, 77, 5, 6],
];

function maxRelDiff(a: Tensor, b: Tensor): number {
  assert.deepEqual(a.shape, b.shape);
  let worst = 0;
  for (let i = 0; i < a.data.length; i++) {
    const x = a.data[i];
    const y = b.data[i];
    if (x === y) continue; // includes -inf masked scores
    worst = Math.max(worst, Math.abs(x - y) / Math.max(1, Math.abs(y)));
  }
  return worst;
}

describe("random Llama-family checkpoints", () => {
  LLAMA_VARIANTS.forEach((v, i) => {
    test(`${v.name}: fast and reference backends agree on every hook at 1e-4`, () => {
      const { dir, config } = makeVariantCheckpoint(root, i);
      const fast = load(dir, { backend: "onnx" });
      const ref = load(dir, { backend: "reference" });
      const all = { namesFilter: () => true };
      const a = fast.runWithCache(PROMPTS, all);
      const b = ref.runWithCache(PROMPTS, all);
      assert.deepEqual(a.cache.names.sort(), b.cache.names.sort());
      assert.ok(a.cache.has("blocks.1.attn.hook_rot_q") && a.cache.has("blocks.0.attn.hook_result"));
      assert.equal(a.cache.has("hook_pos_embed"), false);
      assert.deepEqual(a.cache.get("blocks.0.attn.hook_v").shape, [2, 10, config.nKvHeads, config.dHead]);
      for (const [name, t] of a.cache.entries()) {
        const d = maxRelDiff(t, b.cache.get(name));
        assert.ok(d < 1e-4, `${name}: relative difference ${d}`);
      }
      assert.ok(maxRelDiff(a.logits!, b.logits!) < 1e-4);
      // Attention reaches back exactly sliding_window positions (including itself), or to the start.
      const window = config.slidingWindow ?? Number.POSITIVE_INFINITY;
      const pattern = a.cache.get("blocks.1.attn.hook_pattern").data; // [2, H, 10, 10]
      for (let q = 0; q < 10; q++)
        for (let k = 0; k < 10; k++) {
          const p = pattern[q * 10 + k]; // prompt 0, head 0
          assert.equal(p > 0, k <= q && q - k < window, `query ${q}, key ${k}: ${p}`);
        }
      fast.dispose();
    });

    test(`${v.name}: processing leaves the residual stream alone and shifts logits by their mean`, () => {
      const dir = join(root, `variant-${i}`);
      const raw = load(dir, { backend: "reference", processing: false });
      const processed = load(dir, { backend: "reference" });
      const a = raw.runWithCache(PROMPTS);
      const b = processed.runWithCache(PROMPTS);
      // RMSNorm models: folding the gains is exact and writing weights are not centred, so every residual is equal.
      for (const name of ["blocks.0.hook_resid_pre", "blocks.1.hook_resid_mid", "blocks.1.hook_resid_post"]) {
        const d = maxRelDiff(b.cache.get(name), a.cache.get(name));
        assert.ok(d < 1e-4, `${name}: ${d}`);
      }
      const worst = maxDiffFromCentred(a.logits!.data, b.logits!.data, raw.cfg.dVocab);
      assert.ok(worst < 1e-4, `processed - (raw - mean): ${worst}`);
      // Value biases (Qwen2's) are folded into b_O.
      for (const blk of processed.weights.blocks) assert.ok(blk.b_V.data.every((z) => z === 0));
    });
  });
});

/** y[r, o] = Σ_i x[r, i] W[o, i] (+ b[o]) in float64: a torch Linear on HF-layout weights, written out. */
function hfLinear(
  x: Float32Array,
  rows: number,
  W: Float32Array,
  out: number,
  b?: Float32Array,
): Float64Array {
  const inDim = W.length / out;
  const y = new Float64Array(rows * out);
  for (let r = 0; r < rows; r++)
    for (let o = 0; o < out; o++) {
      let s = b ? b[o] : 0;
      for (let i = 0; i < inDim; i++) s += x[r * inDim + i] * W[o * inDim + i];
      y[r * out + o] = s;
    }
  return y;
}

function assertClose(got: Float32Array, want: Float64Array, what: string): void {
  assert.equal(got.length, want.length, what);
  let worst = 0;
  for (let i = 0; i < got.length; i++)
    worst = Math.max(worst, Math.abs(got[i] - want[i]) / Math.max(1, Math.abs(want[i])));
  assert.ok(worst < 1e-4, `${what}: ${worst}`);
}

describe("the converter reads Hugging Face tensors as transformers does", () => {
  LLAMA_VARIANTS.forEach((v, i) => {
    test(`${v.name}: each projection's hook equals the HF Linear applied to its input hook`, () => {
      const dir = join(root, `variant-${i}`);
      const model = load(dir, { backend: "reference", processing: false });
      const hf = loadCheckpoint(dir).tensors; // HF names and layouts, untouched
      const t = (name: string) => hf.get(name)!.data;
      const has = (name: string) => hf.has(name);
      const { cache } = model.runWithCache([PROMPTS[0]]);
      const rows = PROMPTS[0].length;
      const { nHeads: H, nKvHeads: Hkv, dHead: dh, dModel: D, dMlp, dVocab: V } = model.cfg;
      for (let l = 0; l < model.cfg.nLayers; l++) {
        const p = `model.layers.${l}`;
        const act = (s: string) => cache.get(`blocks.${l}.${s}`).data;
        const bias = (n: string) => (has(n) ? t(n) : undefined);
        const x1 = act("ln1.hook_normalized");
        assertClose(
          act("attn.hook_q"),
          hfLinear(x1, rows, t(`${p}.self_attn.q_proj.weight`), H * dh, bias(`${p}.self_attn.q_proj.bias`)),
          "q",
        );
        assertClose(
          act("attn.hook_k"),
          hfLinear(x1, rows, t(`${p}.self_attn.k_proj.weight`), Hkv * dh, bias(`${p}.self_attn.k_proj.bias`)),
          "k",
        );
        assertClose(
          act("attn.hook_v"),
          hfLinear(x1, rows, t(`${p}.self_attn.v_proj.weight`), Hkv * dh, bias(`${p}.self_attn.v_proj.bias`)),
          "v",
        );
        assertClose(
          act("hook_attn_out"),
          hfLinear(
            act("attn.hook_z"),
            rows,
            t(`${p}.self_attn.o_proj.weight`),
            D,
            bias(`${p}.self_attn.o_proj.bias`),
          ),
          "o",
        );
        const x2 = act("ln2.hook_normalized");
        assertClose(act("mlp.hook_pre"), hfLinear(x2, rows, t(`${p}.mlp.gate_proj.weight`), dMlp), "gate");
        assertClose(act("mlp.hook_pre_linear"), hfLinear(x2, rows, t(`${p}.mlp.up_proj.weight`), dMlp), "up");
        assertClose(
          act("hook_mlp_out"),
          hfLinear(act("mlp.hook_post"), rows, t(`${p}.mlp.down_proj.weight`), D),
          "down",
        );
      }
      const head = has("lm_head.weight") ? t("lm_head.weight") : t("model.embed_tokens.weight");
      assert.equal(has("lm_head.weight"), !model.cfg.tiedEmbeddings);
      const logits = model.run([PROMPTS[0]]).data;
      assertClose(logits, hfLinear(cache.get("ln_final.hook_normalized").data, rows, head, V), "logits");
    });
  });
});

describe("rotary positions", () => {
  test("q·k after rotation depends only on the distance between positions", () => {
    const rot = new Rotary({ theta: 10000, dim: 8, scaling: null });
    const one = { batch: 1, pos: 1, heads: 1, dHead: 8 };
    const q = Float32Array.from([0.3, -1, 0.5, 2, 0.1, 0.7, -0.4, 1.2]);
    const k = Float32Array.from([1, 0.2, -0.3, 0.5, -1.1, 0.4, 0.9, -0.2]);
    const dot = (pq: number, pk: number) => {
      const a = rot.rotate(q, { ...one, firstPos: pq });
      const b = rot.rotate(k, { ...one, firstPos: pk });
      return a.reduce((s, x, i) => s + x * b[i], 0);
    };
    assert.ok(Math.abs(dot(7, 3) - dot(12, 8)) < 1e-5);
    assert.ok(Math.abs(dot(7, 3) - dot(7, 4)) > 1e-3);
    const back = rot.rotate(rot.rotate(q, { ...one, firstPos: 5 }), { ...one, firstPos: 5, inverse: true });
    for (let i = 0; i < 8; i++) assert.ok(Math.abs(back[i] - q[i]) < 1e-6);
  });

  test("llama3 scaling keeps short wavelengths, slows long ones by the factor, interpolates between", () => {
    const plain = rotaryInvFreq({ theta: 500000, dim: 64, scaling: null });
    const scaled = rotaryInvFreq({
      theta: 500000,
      dim: 64,
      scaling: { type: "llama3", factor: 8, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositions: 8192 },
    });
    let kept = 0;
    let slowed = 0;
    let between = 0;
    plain.forEach((f, i) => {
      const wavelen = (2 * Math.PI) / f;
      if (wavelen < 8192 / 4) {
        assert.equal(scaled[i], f);
        kept++;
      } else if (wavelen > 8192) {
        assert.ok(Math.abs(scaled[i] - f / 8) < 1e-15);
        slowed++;
      } else {
        assert.ok(scaled[i] < f && scaled[i] > f / 8);
        between++;
      }
    });
    assert.ok(kept > 0 && slowed > 0 && between > 0, `${kept} ${slowed} ${between}`);
    const linear = rotaryInvFreq({ theta: 10000, dim: 8, scaling: { type: "linear", factor: 4 } });
    rotaryInvFreq({ theta: 10000, dim: 8, scaling: null }).forEach((f, i) => {
      assert.ok(Math.abs(linear[i] - f / 4) < 1e-15);
    });
  });
});

describe("bad configs fail before any weights are read", () => {
  /** A directory whose weights file is garbage: any error must come before reading it. */
  function dirWith(name: string, json: Record<string, unknown>): string {
    const dir = join(root, name);
    makeRandomCheckpoint(dir, parseHfConfig(LLAMA_BASE_CONFIG, "base"), { seed: 1 });
    writeFileSync(join(dir, "config.json"), JSON.stringify(json));
    writeFileSync(join(dir, "model.safetensors"), "not a safetensors file");
    return dir;
  }

  test("unsupported model_type lists the supported ones", () => {
    const dir = dirWith("bert", { ...LLAMA_BASE_CONFIG, model_type: "bert" });
    assert.throws(
      () => loadCheckpoint(dir),
      /model_type is "bert"; supported model types: gpt2, llama, mistral, qwen2/,
    );
  });

  test("hidden_size not divisible by the heads without head_dim", () => {
    const dir = dirWith("heads", { ...LLAMA_BASE_CONFIG, num_attention_heads: 5, num_key_value_heads: 5 });
    assert.throws(
      () => loadCheckpoint(dir),
      /num_attention_heads" \(5\) does not divide hidden_size \(32\) and there is no head_dim/,
    );
  });

  test("key/value heads that do not divide the query heads", () => {
    const dir = dirWith("kv", { ...LLAMA_BASE_CONFIG, num_key_value_heads: 3 });
    assert.throws(
      () => loadCheckpoint(dir),
      /num_key_value_heads" \(3\) must divide num_attention_heads \(4\)/,
    );
  });

  test("an unsupported rope scaling type", () => {
    const dir = dirWith("yarn", { ...LLAMA_BASE_CONFIG, rope_scaling: { rope_type: "yarn", factor: 4 } });
    assert.throws(() => loadCheckpoint(dir), /rope_scaling.rope_type" is "yarn"; supported rotary scalings/);
  });

  test("a missing tokenizer.json names the fix", () => {
    const dir = dirWith("notok", LLAMA_BASE_CONFIG);
    unlinkSync(join(dir, "tokenizer.json"));
    assert.throws(
      () => loadCheckpoint(dir),
      /has no tokenizer.json: a Llama-family model .* needs its tokenizer/,
    );
  });

  test("a valid config with garbage weights does reach the weights (the checks above are not vacuous)", () => {
    const dir = dirWith("garbage", LLAMA_BASE_CONFIG);
    assert.throws(
      () => loadCheckpoint(dir),
      (err: Error) => !/config|tokenizer/.test(err.message),
    );
  });
});
