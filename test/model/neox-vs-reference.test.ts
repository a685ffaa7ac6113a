/**
 * GPT-NeoX (Pythia) against the independent float64 reference (test/helpers/neox-reference.ts): every
 * hook, raw and processed, on random checkpoints of each variant (parallel and sequential residual, partial
 * rotary, F32/F16/BF16); and the config reader's defaults and errors.
 */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import { HookedTransformer } from "../../src/model/hooked-transformer.ts";
import { loadCheckpoint } from "../../src/weights/checkpoint.ts";
import { parseHfConfig } from "../../src/weights/families/index.ts";
import { assertEveryHookMatches } from "../helpers/hook-compare.ts";
import { readHfTensors } from "../helpers/llama-reference.ts";
import { neoxReferenceFromTensors, readNeoxRefConfig } from "../helpers/neox-reference.ts";
import { makeNeoxCheckpoint, NEOX_BASE_CONFIG, NEOX_VARIANTS } from "../helpers/neox-variants.ts";

const root = mkdtempSync(join(tmpdir(), "circuitscope-neox-ref-"));
after(() => rmSync(root, { recursive: true, force: true }));

describe("GPT-NeoX: engine vs independent float64 reference, every hook at 1e-4", () => {
  NEOX_VARIANTS.forEach((v, i) => {
    test(`random ${v.name}: raw and processed, padded batch`, () => {
      const { dir } = makeNeoxCheckpoint(root, i);
      const c = readNeoxRefConfig(dir);
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
          (tokens) => neoxReferenceFromTensors(c, tensors, tokens, { processed }),
          processed ? "processed" : "raw",
        );
        model.dispose();
      }
    });
  });
});

describe("GPT-NeoX config reader", () => {
  test("absent keys take GPTNeoXConfig's defaults (rotary_pct 0.25, base 10000, parallel, untied, gelu)", () => {
    const c = parseHfConfig(
      {
        model_type: "gpt_neox",
        hidden_size: 64,
        num_attention_heads: 4,
        num_hidden_layers: 1,
        intermediate_size: 8,
        vocab_size: 16,
      },
      "config.json",
    );
    assert.deepEqual(c.rotary, { theta: 10000, dim: 4, scaling: null });
    assert.equal(c.parallelResidual, true);
    assert.equal(c.tiedEmbeddings, false);
    assert.equal(c.act, "gelu");
    assert.equal(c.lnEps, 1e-5);
    assert.equal(c.nCtx, 2048);
  });

  test("newer transformers' names: partial_rotary_factor and rope_theta (also inside rope_parameters)", () => {
    const flat = parseHfConfig(
      {
        ...NEOX_BASE_CONFIG,
        rotary_pct: undefined,
        rotary_emb_base: undefined,
        partial_rotary_factor: 0.5,
        rope_theta: 500,
      },
      "c",
    );
    assert.deepEqual(flat.rotary, { theta: 500, dim: 8, scaling: null });
    const nested = parseHfConfig(
      {
        ...NEOX_BASE_CONFIG,
        rotary_pct: undefined,
        rotary_emb_base: undefined,
        rope_parameters: { rope_type: "default", rope_theta: 700, partial_rotary_factor: 1 },
      },
      "c",
    );
    assert.deepEqual(nested.rotary, { theta: 700, dim: 16, scaling: null });
  });

  test("bad fields are named with the fix", () => {
    assert.throws(
      () => parseHfConfig({ ...NEOX_BASE_CONFIG, rotary_pct: 1.5 }, "cfg.json"),
      /cfg\.json.*"rotary_pct".*at most 1/,
    );
    assert.throws(
      () => parseHfConfig({ ...NEOX_BASE_CONFIG, rotary_pct: 0.1 }, "cfg.json"),
      /"rotary_pct".*even number/,
    );
    assert.throws(
      () => parseHfConfig({ ...NEOX_BASE_CONFIG, hidden_act: "swish" }, "cfg.json"),
      /"hidden_act".*supported: gelu/,
    );
    assert.throws(
      () => parseHfConfig({ ...NEOX_BASE_CONFIG, rope_scaling: { type: "linear", factor: 2 } }, "cfg.json"),
      /"rope_scaling"/,
    );
  });
});
