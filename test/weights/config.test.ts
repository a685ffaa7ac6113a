import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";
import type { ModelConfig } from "../../src/weights/config.ts";
import { gpt2Config } from "../../src/weights/families/gpt2.ts";
import { parseHfConfig, toHfConfigJson } from "../../src/weights/families/index.ts";
import { FIXTURE_DIR } from "../helpers/fixture.ts";

const base = { n_layer: 12, n_head: 12, n_embd: 768, n_positions: 1024, vocab_size: 50257 };

test("defaults: eps 1e-5, gelu_new, d_mlp = 4 d_model, d_head = d_model / n_head", () => {
  assert.deepEqual(
    parseHfConfig(base, "c.json"),
    gpt2Config({
      nLayers: 12,
      nHeads: 12,
      dModel: 768,
      dHead: 64,
      dMlp: 3072,
      nCtx: 1024,
      dVocab: 50257,
      lnEps: 1e-5,
      act: "gelu_new",
    }),
  );
  assert.equal(parseHfConfig({ ...base, n_inner: null }, "c").dMlp, 3072);
});

test("explicit fields and activation names map through", () => {
  const c = parseHfConfig(
    {
      ...base,
      n_positions: undefined,
      n_ctx: 256,
      n_inner: 100,
      layer_norm_epsilon: 1e-6,
      activation_function: "relu",
    },
    "c",
  );
  assert.equal(c.nCtx, 256);
  assert.equal(c.dMlp, 100);
  assert.equal(c.lnEps, 1e-6);
  assert.equal(c.act, "relu");
  assert.equal(parseHfConfig({ ...base, activation_function: "gelu_pytorch_tanh" }, "c").act, "gelu_new");
  assert.equal(parseHfConfig({ ...base, activation_function: "gelu" }, "c").act, "gelu");
});

test("the fixture config parses, and toHfConfigJson inverts parsing", () => {
  const json = JSON.parse(readFileSync(`${FIXTURE_DIR}/config.json`, "utf8"));
  const config = parseHfConfig(json, "fixture");
  assert.equal(config.nLayers, 3);
  assert.equal(config.dHead, 16);
  assert.deepEqual(parseHfConfig(toHfConfigJson(config), "again"), config);
  const odd = { ...config, dMlp: 100, act: "relu" as const };
  assert.deepEqual(parseHfConfig(toHfConfigJson(odd), "odd"), odd);
});

test("missing or invalid fields name the file and the field", () => {
  const { n_head: _, ...noHeads } = base;
  assert.throws(
    () => parseHfConfig(noHeads, "/m/config.json"),
    /\/m\/config.json: field "n_head" is missing/,
  );
  assert.throws(() => parseHfConfig({ ...base, n_positions: undefined }, "x"), /field "n_ctx" is missing/);
  assert.throws(
    () => parseHfConfig({ ...base, n_embd: "768" }, "x"),
    /"n_embd" must be a positive integer, got "768"/,
  );
  assert.throws(() => parseHfConfig({ ...base, n_layer: 0 }, "x"), /"n_layer" must be a positive integer/);
  assert.throws(
    () => parseHfConfig({ ...base, n_head: 5 }, "x"),
    /"n_head" \(5\) must divide n_embd \(768\)/,
  );
  assert.throws(
    () => parseHfConfig({ ...base, activation_function: "swish" }, "x"),
    /"activation_function" is "swish"/,
  );
  assert.throws(
    () => parseHfConfig({ ...base, layer_norm_epsilon: -1 }, "x"),
    /"layer_norm_epsilon" must be/,
  );
  assert.throws(() => parseHfConfig([1], "x"), /expected a JSON object/);
  assert.throws(
    () => parseHfConfig({ ...base, model_type: "bert" }, "x"),
    /model_type is "bert"; supported model types: gpt2, llama, mistral, qwen2/,
  );
});

/**
 * Hugging Face's defaults for a key a config.json leaves out, read from transformers' configuration
 * classes (LlamaConfig, MistralConfig, Qwen2Config, GPT2Config + PretrainedConfig). Each base config sets
 * every key to a value that differs from the default, so dropping the key must change the parse.
 */
type Pick = (c: ModelConfig) => unknown;
/** Keys every rotary base config sets (rms_norm_eps away from its default 1e-6). */
const ROTARY_BASE = {
  num_hidden_layers: 2,
  vocab_size: 100,
  max_position_embeddings: 128,
  intermediate_size: 96,
  rms_norm_eps: 1e-5,
};
const HF_DEFAULTS: {
  family: string;
  base: Record<string, unknown>;
  absent: [key: string, read: Pick, hfDefault: unknown][];
}[] = [
  {
    family: "llama",
    base: {
      model_type: "llama",
      hidden_size: 64,
      num_attention_heads: 8,
      num_key_value_heads: 2,
      ...ROTARY_BASE,
      rope_theta: 500000,
      tie_word_embeddings: true,
      attention_bias: true,
      mlp_bias: true,
      head_dim: 16,
    },
    absent: [
      ["tie_word_embeddings", (c) => c.tiedEmbeddings, false],
      ["rms_norm_eps", (c) => c.lnEps, 1e-6],
      ["rope_theta", (c) => c.rotary?.theta, 10000],
      ["attention_bias", (c) => [c.qkvBias, c.outBias], [false, false]],
      ["mlp_bias", (c) => c.mlpBias, false],
      ["head_dim", (c) => c.dHead, 8], // hidden_size / num_attention_heads
      ["num_key_value_heads", (c) => c.nKvHeads, 8], // num_attention_heads
    ],
  },
  {
    family: "mistral",
    base: {
      model_type: "mistral",
      hidden_size: 128,
      num_attention_heads: 16,
      num_key_value_heads: 4,
      ...ROTARY_BASE,
      rope_theta: 1e6,
      tie_word_embeddings: true,
      sliding_window: 64,
      head_dim: 32,
    },
    absent: [
      ["tie_word_embeddings", (c) => c.tiedEmbeddings, false],
      ["rms_norm_eps", (c) => c.lnEps, 1e-6],
      ["rope_theta", (c) => c.rotary?.theta, 10000],
      ["head_dim", (c) => c.dHead, 8],
      ["num_key_value_heads", (c) => c.nKvHeads, 8], // MistralConfig's own default, not num_attention_heads
      ["sliding_window", (c) => c.slidingWindow, 4096],
    ],
  },
  {
    family: "qwen2",
    base: {
      model_type: "qwen2",
      hidden_size: 256,
      num_attention_heads: 64,
      num_key_value_heads: 4,
      ...ROTARY_BASE,
      rope_theta: 1e6,
      tie_word_embeddings: true,
      head_dim: 16,
    },
    absent: [
      ["tie_word_embeddings", (c) => c.tiedEmbeddings, false],
      ["rms_norm_eps", (c) => c.lnEps, 1e-6],
      ["rope_theta", (c) => c.rotary?.theta, 10000],
      ["head_dim", (c) => c.dHead, 4],
      ["num_key_value_heads", (c) => c.nKvHeads, 32], // Qwen2Config's own default
    ],
  },
  {
    family: "gpt2",
    base: {
      n_layer: 2,
      n_head: 4,
      n_embd: 32,
      n_positions: 64,
      vocab_size: 100,
      n_inner: 50,
      layer_norm_epsilon: 1e-6,
      activation_function: "relu",
    },
    absent: [
      ["n_inner", (c) => c.dMlp, 128], // 4 * n_embd
      ["layer_norm_epsilon", (c) => c.lnEps, 1e-5],
      ["activation_function", (c) => c.act, "gelu_new"],
    ],
  },
];

for (const { family, base: full, absent } of HF_DEFAULTS) {
  test(`${family}: each key left out takes Hugging Face's default`, () => {
    const present = parseHfConfig(full, `${family}.json`);
    for (const [key, read, hfDefault] of absent) {
      const { [key]: _, ...without } = full;
      assert.ok(key in full, `${key} is in the base config`);
      assert.notDeepEqual(read(present), hfDefault, `${family} base sets ${key} to a non-default value`);
      assert.deepEqual(read(parseHfConfig(without, `${family}.json`)), hfDefault, `${family} without ${key}`);
    }
  });
}

test("explicit nulls: num_key_value_heads null means num_attention_heads, Mistral's sliding_window null means none", () => {
  for (const { family, base: full } of HF_DEFAULTS.slice(0, 3)) {
    const c = parseHfConfig({ ...full, num_key_value_heads: null }, family);
    assert.equal(c.nKvHeads, full.num_attention_heads, family);
  }
  assert.equal(parseHfConfig({ ...HF_DEFAULTS[1].base, sliding_window: null }, "m").slidingWindow, null);
  // A missing key/value head count whose default does not divide the query heads says where 8 came from.
  const { num_key_value_heads: _, ...noKv } = HF_DEFAULTS[1].base;
  assert.throws(
    () => parseHfConfig({ ...noKv, num_attention_heads: 4, head_dim: 32 }, "m"),
    /num_key_value_heads" \(8, mistral's default when the key is absent\) must divide num_attention_heads \(4\)/,
  );
});

test("GPT-2: tie_word_embeddings absent or true is the tied unembedding; false is refused (no lm_head is read)", () => {
  assert.equal(parseHfConfig({ ...base, tie_word_embeddings: true }, "c").tiedEmbeddings, true);
  assert.equal(parseHfConfig(base, "c").tiedEmbeddings, true);
  assert.throws(
    () => parseHfConfig({ ...base, tie_word_embeddings: false }, "/m/config.json"),
    /\/m\/config.json: field "tie_word_embeddings" is false: only GPT-2 checkpoints with a tied unembedding/,
  );
});
