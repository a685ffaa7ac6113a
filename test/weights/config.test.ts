import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";
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
