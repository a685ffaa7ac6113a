/**
 * The engine's gradients at every hook of Llama-family models against central finite differences of the
 * independent float64 reference forward (no float32 round-off, so the step can be tiny and the check tight):
 * a random direction per hook, on every variant (GQA, one key/value head with Qwen2 biases, untied with
 * llama3 rope and attention biases, Mistral's sliding window) and on stories260k.
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
import { REPO_ROOT } from "../helpers/fixture.ts";
import { checkEveryHookGradient } from "../helpers/gradient-check.ts";
import {
  llamaReferenceFromTensors,
  readHfTensors,
  readLlamaRefConfig,
  referenceEncode,
} from "../helpers/llama-reference.ts";
import { LLAMA_VARIANTS, makeVariantCheckpoint } from "../helpers/llama-variants.ts";

const root = mkdtempSync(join(tmpdir(), "circuitscope-llama-grad-"));
after(() => rmSync(root, { recursive: true, force: true }));
const STORIES = join(REPO_ROOT, "models/stories260k");

const cases = [
  ...LLAMA_VARIANTS.map((v, i) => ({
    name: v.name,
    dir: () => makeVariantCheckpoint(root, i).dir,
    tokens: [1, 40, 300, 7, 88, 120, 5, 400, 33],
  })),
  {
    name: "stories260k",
    dir: () => STORIES,
    tokens: referenceEncode(STORIES, "Once upon a time, Lily was happy. Then"),
  },
];

for (const { name, dir: makeDir, tokens } of cases)
  for (const processed of [false, true]) {
    test(`${name} (${processed ? "processed" : "raw"}): every hook's gradient = float64 finite differences`, () => {
      const dir = makeDir();
      const model = HookedTransformer.fromCheckpoint(loadCheckpoint(dir), {
        processing: processed ? undefined : false,
      });
      const c = readLlamaRefConfig(dir);
      const hf = readHfTensors(dir);
      // A dense-seed metric on raw weights, a sparse one on processed weights.
      const [a, w] = [11, 22];
      const metric = processed ? logitDiffMetric(a, w) : answerLogProbMetric(a);
      const run = runWithGradients(model, [tokens], metric);
      const P = tokens.length;
      const value = (hook: string, dirv: Float64Array, h: number) => {
        const acts = llamaReferenceFromTensors(c, hf, tokens, {
          processed,
          hook: (n, act) => {
            if (n === hook) for (let i = 0; i < act.data.length; i++) act.data[i] += h * dirv[i];
          },
        });
        const row = acts.get("logits")!.data.subarray((P - 1) * c.V, P * c.V);
        if (processed) return row[a] - row[w];
        const max = Math.max(...row);
        return row[a] - max - Math.log(row.reduce((s, x) => s + Math.exp(x - max), 0));
      };
      const checked = checkEveryHookGradient(run, value);
      assert.equal(checked, 3 + c.L * 20, "every hook has a gradient (embed, 20 per block, ln_final's two)");
      model.dispose();
    });
  }
