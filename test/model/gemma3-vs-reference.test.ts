/**
 * Gemma 3 text against the independent float64 reference (test/helpers/gemma2-reference.ts, which reads
 * Gemma 3's config too): every hook, QK-norm's included, raw and processed, on random checkpoints of each
 * variant (local and global rotary bases, linear rope_scaling, sliding patterns, soft-caps off and on,
 * F32/F16/BF16); and the config reader's defaults, published shapes and errors.
 */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import { allHookNames } from "../../src/model/hook-points.ts";
import { HookedTransformer } from "../../src/model/hooked-transformer.ts";
import { hookLayout } from "../../src/patching/targets.ts";
import { saeHookWidth } from "../../src/sae/hook-width.ts";
import { loadCheckpoint } from "../../src/weights/checkpoint.ts";
import { layerRotary, layerWindow } from "../../src/weights/config.ts";
import { gemma3ConfigJson } from "../../src/weights/families/gemma3.ts";
import { familyOf, parseHfConfig, toHfConfigJson } from "../../src/weights/families/index.ts";
import { gemma2ReferenceFromTensors, readGemma2RefConfig } from "../helpers/gemma2-reference.ts";
import { GEMMA3_BASE_CONFIG, GEMMA3_VARIANTS, makeGemma3Checkpoint } from "../helpers/gemma3-variants.ts";
import { assertEveryHookMatches, relDiff } from "../helpers/hook-compare.ts";
import { readHfTensors } from "../helpers/llama-reference.ts";

const root = mkdtempSync(join(tmpdir(), "circuitscope-gemma3-ref-"));
after(() => rmSync(root, { recursive: true, force: true }));

const PROMPTS = [
  [1, 17, 200, 45, 9, 88, 120, 511, 3],
  [1, 250, 2, 77, 5],
];

describe("Gemma 3: engine vs independent float64 reference, every hook at 1e-4", () => {
  GEMMA3_VARIANTS.forEach((v, i) => {
    test(`random ${v.name}: raw and processed, padded batch`, () => {
      const { dir } = makeGemma3Checkpoint(root, i);
      const c = readGemma2RefConfig(dir);
      const tensors = readHfTensors(dir);
      for (const processed of [false, true]) {
        const model = HookedTransformer.fromCheckpoint(loadCheckpoint(dir), {
          processing: processed ? undefined : false,
        });
        assertEveryHookMatches(
          model,
          PROMPTS,
          (tokens) => gemma2ReferenceFromTensors(c, tensors, tokens, { processed }),
          processed ? "processed" : "raw",
        );
        model.dispose();
      }
    });
  });

  test("QK-norm, the local rotary base and rope_scaling each change these checkpoints' values", () => {
    const { dir } = makeGemma3Checkpoint(root, 1);
    const c = readGemma2RefConfig(dir);
    const tokens = PROMPTS[0];
    const ref = gemma2ReferenceFromTensors(c, readHfTensors(dir), tokens);
    const gap = (variant: typeof c, name: string) =>
      relDiff(
        Float32Array.from(ref.get(name)?.data ?? []),
        gemma2ReferenceFromTensors(variant, readHfTensors(dir), tokens).get(name)?.data ?? new Float64Array(),
      );
    assert.ok(gap({ ...c, qkNorm: false }, "blocks.0.attn.hook_pattern") > 1e-2, "QK-norm matters");
    // Layer 1 is the sliding one: its rotation is the local base's.
    assert.ok(gap({ ...c, localBase: c.base }, "blocks.1.attn.hook_pattern") > 1e-2, "local base matters");
    assert.ok(gap({ ...c, globalFactor: 1 }, "blocks.0.attn.hook_pattern") > 1e-2, "rope_scaling matters");
  });

  test("QK-norm's hooks are TransformerLens' attn.q_norm / attn.k_norm, per head", () => {
    const config = parseHfConfig(GEMMA3_BASE_CONFIG, "c");
    const names = allHookNames(config);
    for (const n of [
      "q_norm.hook_scale",
      "q_norm.hook_normalized",
      "k_norm.hook_scale",
      "k_norm.hook_normalized",
    ])
      assert.ok(names.includes(`blocks.2.attn.${n}`), n);
    assert.ok(
      !allHookNames(parseHfConfig({ ...GEMMA3_BASE_CONFIG, model_type: "gemma2" }, "c")).some((n) =>
        n.includes("q_norm"),
      ),
    );
  });
});

test("generation with the key/value cache (past the window, both rotary bases) = re-running the whole sequence", () => {
  const { dir } = makeGemma3Checkpoint(root, 1);
  const model = HookedTransformer.fromCheckpoint(loadCheckpoint(dir));
  try {
    const D = model.cfg.dModel;
    const prompt = [1, 17, 200];
    // Each step's final residual, normalised (what the logits read), seen through a hook.
    const steps: Float32Array[] = [];
    const { tokens } = model.generate(prompt, {
      maxNewTokens: 8,
      temperature: 0,
      stopAtEos: false,
      fwdHooks: [["ln_final.hook_normalized", (act) => void steps.push(act.data.slice(act.data.length - D))]],
    });
    assert.equal(steps.length, 8);
    const full = model.runWithCache([tokens], { namesFilter: (n) => n === "ln_final.hook_normalized" });
    const all = full.cache.get("ln_final.hook_normalized").data;
    steps.forEach((row, i) => {
      const p = prompt.length - 1 + i;
      const d = relDiff(row, Float64Array.from(all.subarray(p * D, (p + 1) * D)));
      assert.ok(d < 1e-4, `position ${p}: ${d}`);
    });
  } finally {
    model.dispose();
  }
});

describe("Gemma 3's QK-norm hooks elsewhere", () => {
  const config = parseHfConfig(GEMMA3_BASE_CONFIG, "c");
  test("SAE widths: q_norm's output is H · d_head wide, k_norm's Hkv · d_head; their scales are refused", () => {
    assert.equal(saeHookWidth("blocks.1.attn.q_norm.hook_normalized", config), 4 * 24);
    assert.equal(saeHookWidth("blocks.1.attn.k_norm.hook_normalized", config), 2 * 24);
    assert.throws(() => saeHookWidth("blocks.1.attn.q_norm.hook_scale", config), /cannot read/);
  });

  test("patching sites: per-head shapes of the QK-norm hooks", () => {
    const shape = (h: string) => hookLayout(`blocks.0.attn.${h}`, config, 7).shape;
    assert.deepEqual(shape("q_norm.hook_normalized"), [7, 4, 24]);
    assert.deepEqual(shape("k_norm.hook_normalized"), [7, 2, 24]);
    assert.deepEqual(shape("q_norm.hook_scale"), [7, 4, 1]);
    assert.deepEqual(shape("k_norm.hook_scale"), [7, 2, 1]);
  });
});

describe("Gemma 3 config reader", () => {
  test("Gemma3TextConfig's defaults: 5 sliding layers to 1 full, local/global bases, no soft-caps, QK-norm", () => {
    const c = parseHfConfig({ model_type: "gemma3_text" }, "config.json");
    assert.deepEqual(
      [c.nLayers, c.dModel, c.nHeads, c.nKvHeads, c.dHead, c.dMlp, c.dVocab, c.nCtx],
      [26, 2304, 8, 4, 256, 9216, 262208, 131072],
    );
    assert.equal(c.qkNorm, true);
    assert.equal(c.postNorms, true);
    assert.equal(c.attnSoftCap, null);
    assert.equal(c.finalSoftCap, null);
    assert.equal(c.embedScale, Math.fround(48));
    assert.deepEqual(
      [0, 4, 5, 6, 11, 25].map((l) => layerWindow(c, l)),
      [4096, 4096, null, 4096, null, 4096],
    );
    assert.deepEqual(
      [0, 5].map((l) => layerRotary(c, l)?.theta),
      [10_000, 1_000_000],
    );
  });

  test("published shapes: gemma-3-270m and gemma-3-1b parameter counts from their tensors", () => {
    const count = (json: Record<string, unknown>) => {
      const c = parseHfConfig(json, "c");
      return [...familyOf(c).expectedTensors(c).values()].reduce(
        (n, s) => n + s.reduce((a, b) => a * b, 1),
        0,
      );
    };
    // Embeddings 262144 × 640 = 167.8M of the 270m; 262144 × 1152 = 302M of the 1b.
    assert.equal(count(gemma3ConfigJson("gemma-3-270m")), 268_098_176);
    assert.equal(count(gemma3ConfigJson("gemma-3-1b")), 999_885_952);
  });

  test("toConfigJson is parseConfig's inverse", () => {
    for (const v of GEMMA3_VARIANTS) {
      const c = parseHfConfig(v.json, v.name);
      assert.deepEqual(parseHfConfig(toHfConfigJson(c), "again"), c);
    }
  });

  test("bad fields are named with the fix", () => {
    assert.throws(
      () =>
        parseHfConfig(
          {
            ...GEMMA3_BASE_CONFIG,
            rope_scaling: {
              rope_type: "llama3",
              factor: 8,
              low_freq_factor: 1,
              high_freq_factor: 4,
              original_max_position_embeddings: 8192,
            },
          },
          "cfg.json",
        ),
      /cfg\.json.*"rope_scaling".*linear/,
    );
    assert.throws(
      () => parseHfConfig({ ...GEMMA3_BASE_CONFIG, sliding_window_pattern: 0 }, "cfg.json"),
      /"sliding_window_pattern".*positive integer/,
    );
    assert.throws(
      () => parseHfConfig({ ...GEMMA3_BASE_CONFIG, hidden_activation: "silu" }, "cfg.json"),
      /"hidden_activation".*Gemma 3.*tanh GELU/,
    );
  });
});
