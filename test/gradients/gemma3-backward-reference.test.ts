/**
 * Gemma 3's gradients at every hook against central finite differences of the independent float64
 * reference forward (test/helpers/gemma2-reference.ts, Gemma 3 semantics): a random direction per hook,
 * through QK-norm (attn.q_norm / attn.k_norm, their scales included), the local and global rotary bases,
 * linear rope_scaling, the post-norms and the sliding windows; raw weights with a dense seed
 * (log-probability), processed weights with a sparse one (logit difference).
 */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { runWithGradients } from "../../src/gradients/backward.ts";
import { answerLogProbMetric, logitDiffMetric } from "../../src/gradients/logit-metric.ts";
import { HookedTransformer } from "../../src/model/hooked-transformer.ts";
import { loadCheckpoint } from "../../src/weights/checkpoint.ts";
import { gemma2ReferenceFromTensors, readGemma2RefConfig } from "../helpers/gemma2-reference.ts";
import { GEMMA3_VARIANTS, makeGemma3Checkpoint } from "../helpers/gemma3-variants.ts";
import { checkEveryHookGradient, perturbedReferenceMetric } from "../helpers/gradient-check.ts";
import { readHfTensors } from "../helpers/llama-reference.ts";

const root = mkdtempSync(join(tmpdir(), "circuitscope-gemma3-grad-"));
after(() => rmSync(root, { recursive: true, force: true }));

// No soft-caps (variant 0); rope_scaling and a final soft-cap (variant 1).
for (const i of [0, 1]) {
  const v = GEMMA3_VARIANTS[i];
  for (const processed of [false, true]) {
    test(`${v.name} (${processed ? "processed" : "raw"}): every hook's gradient = float64 finite differences`, () => {
      const { dir } = makeGemma3Checkpoint(root, i);
      const model = HookedTransformer.fromCheckpoint(loadCheckpoint(dir), {
        processing: processed ? undefined : false,
      });
      const c = readGemma2RefConfig(dir);
      const hf = readHfTensors(dir);
      const tokens = [1, 40, 300, 7, 88, 120, 5, 400, 33];
      const [a, w] = [11, 22];
      const metric = processed ? logitDiffMetric(a, w) : answerLogProbMetric(a);
      const run = runWithGradients(model, [tokens], metric);
      const value = perturbedReferenceMetric(
        (hook) => gemma2ReferenceFromTensors(c, hf, tokens, { processed, hook }),
        { V: c.V, P: tokens.length, answer: a, wrong: w, logProb: !processed },
      );
      const checked = checkEveryHookGradient(run, value);
      // embed, 28 per block (Gemma 2's 24 + q_norm's two + k_norm's two), ln_final's two.
      assert.equal(checked, 3 + c.L * 28, "every hook has a gradient");
      model.dispose();
    });
  }
}
