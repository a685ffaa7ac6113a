/**
 * GPT-NeoX's gradients at every hook against central finite differences of the independent float64
 * reference forward (test/helpers/neox-reference.ts): a random direction per hook, parallel and sequential
 * residual, raw and processed.
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
import { checkEveryHookGradient, perturbedReferenceMetric } from "../helpers/gradient-check.ts";
import { readHfTensors } from "../helpers/llama-reference.ts";
import { neoxReferenceFromTensors, readNeoxRefConfig } from "../helpers/neox-reference.ts";
import { makeNeoxCheckpoint, NEOX_VARIANTS } from "../helpers/neox-variants.ts";

const root = mkdtempSync(join(tmpdir(), "circuitscope-neox-grad-"));
after(() => rmSync(root, { recursive: true, force: true }));

NEOX_VARIANTS.forEach((v, i) => {
  for (const processed of [false, true]) {
    test(`${v.name} (${processed ? "processed" : "raw"}): every hook's gradient = float64 finite differences`, () => {
      const { dir } = makeNeoxCheckpoint(root, i);
      const model = HookedTransformer.fromCheckpoint(loadCheckpoint(dir), {
        processing: processed ? undefined : false,
      });
      const c = readNeoxRefConfig(dir);
      const hf = readHfTensors(dir);
      const tokens = [1, 40, 300, 7, 88, 120, 5, 400, 33];
      const P = tokens.length;
      // A dense-seed metric on raw weights, a sparse one on processed weights.
      const [a, w] = [11, 22];
      const metric = processed ? logitDiffMetric(a, w) : answerLogProbMetric(a);
      const run = runWithGradients(model, [tokens], metric);
      const value = perturbedReferenceMetric(
        (hook) => neoxReferenceFromTensors(c, hf, tokens, { processed, hook }),
        {
          V: c.V,
          P,
          answer: a,
          wrong: w,
          logProb: !processed,
        },
      );
      const checked = checkEveryHookGradient(run, value);
      // embed, 19 per block (no mlp.hook_pre_linear: the MLP is not gated), ln_final's two.
      assert.equal(checked, 3 + c.L * 19, "every hook has a gradient");
      model.dispose();
    });
  }
});
