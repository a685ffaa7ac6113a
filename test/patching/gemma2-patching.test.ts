/**
 * Gemma 2 through the patching, attribution, SAE and circuit features on a random checkpoint with both
 * soft-caps, post-norms and alternating sliding windows: the fast exact path against the straightforward
 * one for every target; resid_mid and mlp_out patches against the same patch in the float64 reference;
 * attribution patching = the gradient on the corrupted run · (clean − corrupted); an SAE at a hook only
 * Gemma has (blocks.0.ln1_post.hook_normalized) loads from a SAELens directory and splices; edge circuits
 * are refused with what to use instead.
 */
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import { promisify } from "node:util";
import { CircuitTask } from "../../src/circuits/circuit-task.ts";
import { runWithGradients } from "../../src/gradients/backward.ts";
import { logitDiffMetric } from "../../src/gradients/logit-metric.ts";
import { HookedTransformer } from "../../src/model/hooked-transformer.ts";
import { activationPatching } from "../../src/patching/activation-patching.ts";
import { attributionPatching } from "../../src/patching/attribution-patching.ts";
import type { PatchTarget } from "../../src/patching/targets.ts";
import { saeSplice } from "../../src/sae/attach.ts";
import { loadSaeLensDir, writeSaeLensDir } from "../../src/sae/saelens-dir.ts";
import { referenceKernels } from "../../src/tensor/reference-kernels.ts";
import type { Tensor } from "../../src/tensor/tensor.ts";
import { loadCheckpoint } from "../../src/weights/checkpoint.ts";
import { REPO_ROOT } from "../helpers/fixture.ts";
import { gemma2ReferenceFromTensors, readGemma2RefConfig } from "../helpers/gemma2-reference.ts";
import { makeGemma2Checkpoint } from "../helpers/gemma2-variants.ts";
import { type RefTensor, readHfTensors, referenceLogitDiff } from "../helpers/llama-reference.ts";
import { LAYER_AND_HEAD_TARGETS } from "../helpers/patch-targets.ts";
import { randomSaeWeights, saeConfigFor } from "../helpers/random-sae.ts";
import { maxAbsDiff } from "../helpers/reference.ts";

const root = mkdtempSync(join(tmpdir(), "circuitscope-gemma2-patch-"));
after(() => rmSync(root, { recursive: true, force: true }));

// Pair 0 differs first at position 4 (patched runs reuse the corrupted prefix's keys/values); pair 1 at 1.
const clean = [
  [1, 17, 200, 45, 9, 88, 120, 3],
  [1, 250, 2, 77, 5, 6, 7, 8],
];
const corrupted = [
  [1, 17, 200, 45, 300, 88, 120, 3],
  [1, 30, 2, 77, 5, 6, 7, 8],
];
const answers = { answer: 11, wrong: 22 };
const BIN = "./bin/circuitscope.js";
const { dir } = makeGemma2Checkpoint(root, 0); // both soft-caps, window 3

describe("Gemma 2: patching", () => {
  const model = HookedTransformer.fromCheckpoint(loadCheckpoint(dir));
  after(() => model.dispose());
  const base = { clean, corrupted, answers, chunkSize: 5 };
  const targets: [string, PatchTarget][] = [
    ...LAYER_AND_HEAD_TARGETS,
    ["head_all", { kind: "head_all" }],
    ["neurons of layer 1", { kind: "neurons", layer: 1 }],
  ];
  for (const [what, target] of targets) {
    test(`${what}: fast exact path = one full forward per patch`, async () => {
      const fast = await activationPatching(model, { ...base, target });
      const slow = await activationPatching(model, { ...base, target, method: "straightforward" });
      assert.deepEqual(fast.shape, slow.shape);
      const d = maxAbsDiff(Float32Array.from(fast.perPrompt.raw), Float32Array.from(slow.perPrompt.raw));
      assert.ok(d < 1e-4, `per-prompt logit differences differ by ${d}`);
      assert.ok(
        fast.perPrompt.raw.some((x) => Math.abs(x - fast.perPrompt.corrupted[0]) > 1e-3),
        "some patch moves the metric",
      );
    });
  }

  test("resid_mid and mlp_out patches = the same patch in the float64 reference (processed)", async () => {
    const c = readGemma2RefConfig(dir);
    const t = readHfTensors(dir);
    for (const kind of ["resid_mid", "mlp_out"] as const) {
      const res = await activationPatching(model, { ...base, target: { kind } });
      const [L, nPos] = res.shape;
      const cleanActs = gemma2ReferenceFromTensors(c, t, clean[0], { processed: true });
      for (const [l, p] of [
        [0, 4],
        [L - 1, nPos - 1],
        [1, nPos - 2],
      ]) {
        const hook = `blocks.${l}.hook_${kind}`;
        const src = cleanActs.get(hook)!.data;
        const acts = gemma2ReferenceFromTensors(c, t, corrupted[0], {
          processed: true,
          hook: (name: string, act: RefTensor) => {
            if (name !== hook) return;
            for (let d = 0; d < c.D; d++) act.data[p * c.D + d] = src[p * c.D + d];
          },
        });
        const want = referenceLogitDiff(acts, answers.answer, answers.wrong);
        const got = res.perPrompt.raw[l * nPos + p]; // [prompt, layer, pos]: prompt 0
        assert.ok(
          Math.abs(got - want) < 1e-4 * Math.max(1, Math.abs(want)),
          `${hook} pos ${p}: ${got} vs ${want}`,
        );
      }
    }
  });

  test("attribution patching = gradient on the corrupted run · (clean − corrupted), per prompt", () => {
    const est = attributionPatching(model, { clean, corrupted, answers, target: { kind: "attn_out" } });
    const [L, P] = est.shape;
    const D = model.cfg.dModel;
    clean.forEach((toks, b) => {
      const run = runWithGradients(model, [corrupted[b]], logitDiffMetric(answers.answer, answers.wrong));
      const cleanCache = model.runWithCache([toks], {
        namesFilter: (n) => n.endsWith("hook_attn_out"),
      }).cache;
      for (let l = 0; l < L; l++) {
        const hook = `blocks.${l}.hook_attn_out`;
        const [g, x, y] = [run.grads.get(hook).data, cleanCache.get(hook).data, run.cache.get(hook).data];
        for (let p = 0; p < P; p++) {
          let want = run.value;
          for (let d = 0; d < D; d++) want += g[p * D + d] * (x[p * D + d] - y[p * D + d]);
          const got = est.perPrompt.raw[(b * L + l) * P + p];
          assert.ok(
            Math.abs(got - want) < 1e-4 * Math.max(1, Math.abs(want)),
            `${hook} pos ${p}: ${got} vs ${want}`,
          );
        }
      }
    });
  });
});

test("an SAE at blocks.0.ln1_post.hook_normalized (a hook only post-norm models have) loads and splices", async () => {
  const model = HookedTransformer.fromCheckpoint(loadCheckpoint(dir), { backend: "reference" });
  const hook = "blocks.0.ln1_post.hook_normalized";
  const D = model.cfg.dModel;
  const cfg = saeConfigFor({ architecture: "jumprelu", dIn: D, dSae: 48, hookName: hook });
  const saeDir = join(root, "sae-ln1-post");
  await writeSaeLensDir(saeDir, {
    cfg,
    weights: randomSaeWeights({ architecture: "jumprelu", dIn: D, dSae: 48, seed: 5, encScale: 0.3 }),
  });
  const sae = loadSaeLensDir(saeDir, { kernels: referenceKernels });
  const tokens = [clean[0]];
  const plain = model.run(tokens);
  assert.deepEqual(model.run(tokens, { splices: [saeSplice(sae, { useErrorTerm: true })] }).data, plain.data);
  const spliced = model.run(tokens, { splices: [saeSplice(sae)] });
  const byHand = model.run(tokens, {
    fwdHooks: [
      [
        hook,
        (act: Tensor) => {
          for (let r = 0; r * D < act.size; r++)
            act.data.set(sae.decode(sae.encode(act.data.slice(r * D, (r + 1) * D), 1).post, 1), r * D);
        },
      ],
    ],
  });
  assert.deepEqual(spliced.data, byHand.data);
  assert.ok(maxAbsDiff(spliced.data, plain.data) > 1e-3, "the reconstruction moves the logits");
  model.dispose();
});

test("edge circuits are refused for Gemma 2, naming why and what to use instead", () => {
  const model = HookedTransformer.fromCheckpoint(loadCheckpoint(dir), { backend: "reference" });
  assert.throws(
    () => new CircuitTask(model, { clean, corrupted, answer: [11, 11], wrong: [22, 22] }),
    /Edge circuits are not supported for gemma2: .*ln1_post.*attribution patching/,
  );
  model.dispose();
});

test("generation with the key/value cache (past the sliding window) = re-running the whole sequence", () => {
  const model = HookedTransformer.fromCheckpoint(loadCheckpoint(dir));
  const D = model.cfg.dModel;
  const prompt = [1, 17, 200];
  // Each step's final residual, normalised (what the logits read), seen through a hook.
  const steps: Float32Array[] = [];
  const record = (act: Tensor) => {
    steps.push(act.data.slice(act.data.length - D));
  };
  const { tokens } = model.generate(prompt, {
    maxNewTokens: 8,
    temperature: 0,
    stopAtEos: false,
    fwdHooks: [["ln_final.hook_normalized", record]],
  });
  assert.equal(steps.length, 8);
  const full = model.runWithCache([tokens], { namesFilter: (n) => n === "ln_final.hook_normalized" });
  const all = full.cache.get("ln_final.hook_normalized").data;
  steps.forEach((row, i) => {
    const p = prompt.length - 1 + i; // step i's position
    const d = maxAbsDiff(row, all.subarray(p * D, (p + 1) * D));
    assert.ok(d < 1e-4, `position ${p}: ${d}`);
  });
  model.dispose();
});

test("attribute on a capped, post-normed model: the decomposition sums to the pre-cap difference, and says so", async () => {
  const model = HookedTransformer.fromCheckpoint(loadCheckpoint(dir), { backend: "reference" });
  const prompt = "Once upon a time";
  const [tokens, answer, wrong] = [
    model.toTokens(prompt),
    model.toSingleToken(" time"),
    model.toSingleToken(" day"),
  ];
  model.dispose();
  const c = readGemma2RefConfig(dir);
  const t = readHfTensors(dir);
  const capped = referenceLogitDiff(gemma2ReferenceFromTensors(c, t, tokens), answer, wrong);
  const preCap = referenceLogitDiff(
    gemma2ReferenceFromTensors({ ...c, finalCap: null }, t, tokens),
    answer,
    wrong,
  );
  assert.ok(Math.abs(capped - preCap) > 0.1, `the cap must matter here: ${capped} vs ${preCap}`);
  const args = ["attribute", "--model", dir, "--backend", "reference", "--prompt", prompt];
  const p = promisify(execFile)(BIN, [...args, "--answer", " time", "--wrong", " day"], { cwd: REPO_ROOT });
  try {
    const { stdout } = await p;
    const lines = stdout.split("\n");
    const mean = Number(/mean\s+(-?[\d.]+)/.exec(stdout)?.[1]);
    assert.ok(Math.abs(mean - capped) < 1e-3, `printed logit difference ${mean} vs capped ${capped}`);
    assert.match(stdout, /soft-capped at ±3: the tables below attribute the pre-cap logit difference/);
    assert.match(stdout, /normalised with the others after attention \(ln1_post\)/);
    const from = lines.findIndex((l) => l.startsWith("Decomposed residual"));
    const to = lines.findIndex((l, i) => i > from && l.trim() === "");
    const sum = lines.slice(from + 1, to).reduce((s, l) => s + Number(l.trim().split(/\s+/).pop()), 0);
    assert.ok(Math.abs(sum - preCap) < 1e-2, `decomposition sums to ${sum}, pre-cap difference ${preCap}`);
  } finally {
    p.child.kill("SIGKILL");
  }
});
