/**
 * Gemma 2 against the independent float64 reference (test/helpers/gemma2-reference.ts): every hook, raw
 * and processed, on random checkpoints of each variant (soft-caps on and off, sliding and global layers,
 * grouped-query heads, F32/F16/BF16); and the config reader's defaults, the Gemma-2-2b shape and errors.
 */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import { HookedTransformer } from "../../src/model/hooked-transformer.ts";
import { loadCheckpoint } from "../../src/weights/checkpoint.ts";
import { layerWindow } from "../../src/weights/config.ts";
import { GEMMA2_2B_CONFIG } from "../../src/weights/families/gemma2.ts";
import { familyOf, parseHfConfig, toHfConfigJson } from "../../src/weights/families/index.ts";
import { gemma2ReferenceFromTensors, readGemma2RefConfig } from "../helpers/gemma2-reference.ts";
import { GEMMA2_BASE_CONFIG, GEMMA2_VARIANTS, makeGemma2Checkpoint } from "../helpers/gemma2-variants.ts";
import { assertEveryHookMatches, relDiff } from "../helpers/hook-compare.ts";
import { readHfTensors } from "../helpers/llama-reference.ts";

const root = mkdtempSync(join(tmpdir(), "circuitscope-gemma2-ref-"));
after(() => rmSync(root, { recursive: true, force: true }));

describe("Gemma 2: engine vs independent float64 reference, every hook at 1e-4", () => {
  GEMMA2_VARIANTS.forEach((v, i) => {
    test(`random ${v.name}: raw and processed, padded batch`, () => {
      const { dir } = makeGemma2Checkpoint(root, i);
      const c = readGemma2RefConfig(dir);
      const tensors = readHfTensors(dir);
      const prompts = [
        [1, 17, 200, 45, 9, 88, 120, 511, 3],
        [1, 250, 2, 77, 5],
      ];
      for (const processed of [false, true]) {
        const model = HookedTransformer.fromCheckpoint(loadCheckpoint(dir), {
          processing: processed ? undefined : false,
        });
        assertEveryHookMatches(
          model,
          prompts,
          (tokens) => gemma2ReferenceFromTensors(c, tensors, tokens, { processed }),
          processed ? "processed" : "raw",
        );
        model.dispose();
      }
    });
  });

  test("the soft-caps bend these checkpoints' values (so the comparison above tests them)", () => {
    const { dir } = makeGemma2Checkpoint(root, 0);
    const c = readGemma2RefConfig(dir);
    const tokens = [1, 17, 200, 45, 9, 88, 120, 511, 3];
    const ref = gemma2ReferenceFromTensors(c, readHfTensors(dir), tokens);
    const uncapped = gemma2ReferenceFromTensors(
      { ...c, attnCap: null, finalCap: null },
      readHfTensors(dir),
      tokens,
    );
    const gap = (name: string) => relDiff(Float32Array.from(ref.get(name)!.data), uncapped.get(name)!.data);
    assert.ok(gap("blocks.0.attn.hook_pattern") > 1e-2, "attention soft-cap matters");
    assert.ok(gap("logits") > 1e-1, "final soft-cap matters");
    const logits = ref.get("logits")!.data;
    assert.ok(
      logits.every((x) => Math.abs(x) < 3),
      "capped logits lie within ±final_logit_softcapping",
    );
  });
});

describe("Gemma 2 config reader", () => {
  test("the Gemma-2-2b shape: Gemma2Config's defaults, alternating windows, every field the engine reads", () => {
    const c = parseHfConfig(GEMMA2_2B_CONFIG, "config.json");
    assert.deepEqual(
      [c.nLayers, c.dModel, c.nHeads, c.nKvHeads, c.dHead, c.dMlp, c.dVocab],
      [26, 2304, 8, 4, 256, 9216, 256000],
    );
    assert.equal(c.act, "gelu_new");
    assert.equal(c.normalization, "rmsnorm");
    assert.equal(c.gatedMlp, true);
    assert.equal(c.tiedEmbeddings, true);
    assert.equal(c.postNorms, true);
    assert.equal(c.embedScale, 48);
    assert.equal(c.attnScale, 1 / 16);
    assert.equal(c.attnSoftCap, 50);
    assert.equal(c.finalSoftCap, 30);
    assert.deepEqual(
      [0, 1, 2, 25].map((l) => layerWindow(c, l)),
      [4096, null, 4096, null],
    );
    // gemma-2-2b's published size (2.61B), counted from the tensors a checkpoint of this shape must hold.
    const params = [...familyOf(c).expectedTensors(c).values()].reduce(
      (n, shape) => n + shape.reduce((a, b) => a * b, 1),
      0,
    );
    assert.equal(params, 2_614_341_888);
    // An empty config takes the same defaults.
    assert.deepEqual(parseHfConfig({ model_type: "gemma2" }, "c"), c);
  });

  test("toConfigJson is parseConfig's inverse", () => {
    for (const v of GEMMA2_VARIANTS) {
      const c = parseHfConfig(v.json, v.name);
      assert.deepEqual(parseHfConfig(toHfConfigJson(c), "again"), c);
    }
  });

  test("null soft-caps and window switch them off", () => {
    const c = parseHfConfig(
      {
        ...GEMMA2_BASE_CONFIG,
        attn_logit_softcapping: null,
        final_logit_softcapping: null,
        sliding_window: null,
      },
      "c",
    );
    assert.equal(c.attnSoftCap, null);
    assert.equal(c.finalSoftCap, null);
    assert.equal(layerWindow(c, 0), null);
  });

  test("bad fields are named with the fix", () => {
    assert.throws(
      () => parseHfConfig({ ...GEMMA2_BASE_CONFIG, hidden_activation: "silu" }, "cfg.json"),
      /cfg\.json.*"hidden_activation".*tanh GELU/,
    );
    assert.throws(
      () => parseHfConfig({ ...GEMMA2_BASE_CONFIG, num_key_value_heads: 3 }, "cfg.json"),
      /"num_key_value_heads".*must divide/,
    );
    assert.throws(
      () => parseHfConfig({ ...GEMMA2_BASE_CONFIG, layer_types: ["sliding_attention"] }, "cfg.json"),
      /"layer_types".*one type per layer/,
    );
    assert.throws(
      () => parseHfConfig({ ...GEMMA2_BASE_CONFIG, attn_logit_softcapping: -1 }, "cfg.json"),
      /"attn_logit_softcapping".*positive number/,
    );
    assert.throws(
      () => parseHfConfig({ ...GEMMA2_BASE_CONFIG, rope_scaling: { type: "linear", factor: 2 } }, "cfg.json"),
      /"rope_scaling"/,
    );
  });
});
