/**
 * The engine against the independent float64 Llama-family reference (test/helpers/llama-reference.ts):
 * every hook, raw and processed, on the bundled stories260k and on random checkpoints of each variant.
 */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import { HookedTransformer } from "../../src/model/hooked-transformer.ts";
import type { Tensor } from "../../src/tensor/tensor.ts";
import { loadCheckpoint, makeRandomCheckpoint } from "../../src/weights/checkpoint.ts";
import { parseHfConfig } from "../../src/weights/families/index.ts";
import type { SafetensorsWriteDtype } from "../../src/weights/safetensors.ts";
import { REPO_ROOT } from "../helpers/fixture.ts";
import {
  llamaReferenceFromTensors,
  type RefTensor,
  readHfTensors,
  readLlamaRefConfig,
  referenceEncode,
} from "../helpers/llama-reference.ts";

const STORIES = join(REPO_ROOT, "models/stories260k");
const root = mkdtempSync(join(tmpdir(), "circuitscope-llama-ref-"));
after(() => rmSync(root, { recursive: true, force: true }));

const base = {
  model_type: "llama",
  hidden_size: 32,
  intermediate_size: 40,
  num_hidden_layers: 2,
  num_attention_heads: 4,
  num_key_value_heads: 2,
  vocab_size: 300,
  max_position_embeddings: 64,
  rms_norm_eps: 1e-5,
  tie_word_embeddings: true,
};

/** Random checkpoints of each variant the reference knows (stored in different dtypes). */
export const LLAMA_VARIANTS: { name: string; json: Record<string, unknown>; dtype: SafetensorsWriteDtype }[] =
  [
    { name: "llama GQA 4/2 tied (F16)", json: base, dtype: "F16" },
    {
      name: "llama untied, head_dim 12, llama3 rope, attention biases",
      json: {
        ...base,
        hidden_size: 40,
        head_dim: 12,
        tie_word_embeddings: false,
        attention_bias: true,
          rope_theta: 500000,
        rope_scaling: {
          rope_type: "llama3",
          factor: 8,
          low_freq_factor: 1,
          high_freq_factor: 4,
          original_max_position_embeddings: 16,
        },
      },
      dtype: "F32",
    },
    {
      name: "qwen2 q/k/v biases, one key/value head, untied (BF16)",
      json: { ...base, model_type: "qwen2", num_key_value_heads: 1, tie_word_embeddings: false },
      dtype: "BF16",
    },
    {
      name: "mistral sliding window 3, linear rope scaling",
      json: {
        ...base,
        model_type: "mistral",
        sliding_window: 3,
        rope_scaling: { type: "linear", factor: 2 },
      },
      dtype: "F32",
    },
  ];

/** Prompt b's part of a padded batch activation: [1, n, ...] (or [1, H, n, n] for scores and patterns). */
function promptSlice(name: string, t: Tensor, b: number, n: number): Float32Array {
  const [B, ...rest] = t.shape;
  const per = t.data.length / B;
  const x = t.data.subarray(b * per, (b + 1) * per);
  if (/hook_(attn_scores|pattern)$/.test(name)) {
    const [H, P] = rest;
    const out = new Float32Array(H * n * n);
    for (let h = 0; h < H; h++)
      for (let i = 0; i < n; i++) out.set(x.subarray((h * P + i) * P, (h * P + i) * P + n), (h * n + i) * n);
    return out;
  }
  const P = rest[0];
  return x.subarray(0, (per / P) * n);
}

/** Largest |a - b| / max(1, |b|) (equal infinities equal). */
function relDiff(a: Float32Array, b: Float64Array): number {
  assert.equal(a.length, b.length);
  let worst = 0;
  for (let i = 0; i < a.length; i++) {
    if (a[i] === b[i]) continue;
    const d = Math.abs(a[i] - b[i]) / Math.max(1, Math.abs(b[i]));
    worst = Number.isNaN(d) ? Number.POSITIVE_INFINITY : Math.max(worst, d);
  }
  return worst;
}

/** Runs the engine (fast backend) on a padded batch and compares every hook of every prompt with the reference. */
function compareEveryHook(dir: string, prompts: number[][], processed: boolean): number {
  const model = HookedTransformer.fromCheckpoint(loadCheckpoint(dir), {
    processing: processed ? undefined : false,
  });
  const c = readLlamaRefConfig(dir);
  const tensors = readHfTensors(dir);
  const { cache, logits } = model.runWithCache(prompts, { namesFilter: () => true });
  let compared = 0;
  prompts.forEach((tokens, b) => {
    const ref = llamaReferenceFromTensors(c, tensors, tokens, { processed });
    const names = cache.names.filter((n) => !n.endsWith("attn.hook_result"));
    // The engine has exactly the reference's hooks (hook_result aside: optional, checked through attn_out).
    assert.deepEqual([...names].sort(), [...ref.keys()].filter((n) => n !== "logits").sort(), "hook names");
    const check = (name: string, got: Tensor, want: RefTensor) => {
      const n = tokens.length;
      const d = relDiff(promptSlice(name, got, b, n), want.data);
      assert.ok(
        d < 1e-4,
        `${name} (prompt ${b}, ${processed ? "processed" : "raw"}): relative difference ${d}`,
      );
      compared++;
    };
    for (const name of names) check(name, cache.get(name), ref.get(name)!);
    check("logits", logits!, ref.get("logits")!);
  });
  model.dispose();
  return compared;
}

describe("engine vs independent float64 reference, every hook at 1e-4", () => {
  const stories = [
    referenceEncode(STORIES, "Once upon a time, there was a little girl named Lily."),
    referenceEncode(STORIES, "She saw a big, red ball."),
  ];
  for (const processed of [false, true]) {
    test(`stories260k (${processed ? "processed" : "raw"})`, () => {
      const n = compareEveryHook(STORIES, stories, processed);
      // 5 blocks x 20 hooks + embed + ln_final scale/normalized + logits, per prompt.
      assert.equal(n, 2 * (5 * 20 + 4));
    });
  }

  LLAMA_VARIANTS.forEach((v, i) => {
    test(`random ${v.name}: raw and processed`, () => {
      const dir = join(root, `v${i}`);
      makeRandomCheckpoint(dir, parseHfConfig(v.json, v.name), { seed: 100 + i, dtype: v.dtype, std: 0.2 });
      const prompts = [
        [1, 17, 200, 45, 9, 88, 120, 299, 3],
        [1, 250, 2, 77, 5],
      ];
      for (const processed of [false, true]) assert.ok(compareEveryHook(dir, prompts, processed) > 0);
    });
  });
});
