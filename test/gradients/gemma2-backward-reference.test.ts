/**
 * Gemma 2's gradients at every hook against central finite differences of the independent float64
 * reference forward (test/helpers/gemma2-reference.ts): a random direction per hook, through both
 * soft-caps (attention scores and final logits), the post-norms and the sliding windows; raw weights with
 * a dense seed (log-probability), processed weights with a sparse one (logit difference).
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
import { GEMMA2_VARIANTS, makeGemma2Checkpoint } from "../helpers/gemma2-variants.ts";
import { checkEveryHookGradient, perturbedReferenceMetric } from "../helpers/gradient-check.ts";
import { readHfTensors } from "../helpers/llama-reference.ts";

const root = mkdtempSync(join(tmpdir(), "circuitscope-gemma2-grad-"));
after(() => rmSync(root, { recursive: true, force: true }));

// Both soft-caps on (variant 0) and off (variant 1).
for (const i of [0, 1]) {
  const v = GEMMA2_VARIANTS[i];
  for (const processed of [false, true]) {
    test(`${v.name} (${processed ? "processed" : "raw"}): every hook's gradient = float64 finite differences`, () => {
      const { dir } = makeGemma2Checkpoint(root, i);
      const model = HookedTransformer.fromCheckpoint(loadCheckpoint(dir), {
        processing: processed ? undefined : false,
      });
      const c = readGemma2RefConfig(dir);
      const hf = readHfTensors(dir);
      const tokens = [1, 40, 300, 7, 88, 120, 5, 400, 33];
      const P = tokens.length;
      const [a, w] = [11, 22];
      const metric = processed ? logitDiffMetric(a, w) : answerLogProbMetric(a);
      const run = runWithGradients(model, [tokens], metric);
      const value = perturbedReferenceMetric(
        (hook) => gemma2ReferenceFromTensors(c, hf, tokens, { processed, hook }),
        {
          V: c.V,
          P,
          answer: a,
          wrong: w,
          logProb: !processed,
        },
      );
      const checked = checkEveryHookGradient(run, value);
      // embed, 24 per block (19 + pre_linear + ln1_post's two + ln2_post's two), ln_final's two.
      assert.equal(checked, 3 + c.L * 24, "every hook has a gradient");
      model.dispose();
    });
  }
}
