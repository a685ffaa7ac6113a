import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { runWithGradients } from "../../src/gradients/backward.ts";
import {
  answerLogProbMetric,
  type LogitMetric,
  logitDiffMetric,
  normalizedLogitDiffMetric,
} from "../../src/gradients/logit-metric.ts";
import { allHookNames } from "../../src/model/hook-points.ts";
import { HookedTransformer } from "../../src/model/hooked-transformer.ts";
import type { HookSpec } from "../../src/model/hooks.ts";
import { Tensor } from "../../src/tensor/tensor.ts";
import { mulberry32, randn } from "../../src/util/random.ts";
import { loadCheckpoint, makeRandomCheckpoint } from "../../src/weights/checkpoint.ts";
import type { ModelConfig } from "../../src/weights/config.ts";
import { gpt2Config } from "../../src/weights/families/gpt2.ts";
import { parseHfConfig } from "../../src/weights/families/index.ts";
import { LLAMA_VARIANTS } from "../helpers/llama-variants.ts";
import { loadFixtureModel, maxAbsDiff, referenceJson, referenceTensors } from "../helpers/reference.ts";

const tmp = mkdtempSync(join(tmpdir(), "cs-gradients-"));
after(() => rmSync(tmp, { recursive: true, force: true }));

test("gradients match the fixture's grad.* reference for every hook (corrupted batch, normalised metric)", () => {
  const model = loadFixtureModel();
  const { prompts: p, scalars: s } = referenceJson;
  const metric = normalizedLogitDiffMetric(
    p.answer_token,
    p.wrong_token,
    s.clean_logit_diff,
    s.corrupted_logit_diff,
  );
  const run = runWithGradients(model, p.corrupted_tokens, metric);
  // On the corrupted run the normalised metric is 0 by definition.
  assert.ok(Math.abs(run.value) < 1e-4, `metric on the corrupted run: ${run.value}`);
  let checked = 0;
  for (const [key, ref] of referenceTensors()) {
    if (!key.startsWith("grad.")) continue;
    const got = run.grads.get(key.slice("grad.".length));
    assert.deepEqual(got.shape, ref.shape, key);
    const d = maxAbsDiff(got, ref);
    assert.ok(d <= 1e-4, `${key}: max |diff| ${d}`);
    checked++;
  }
  // 17 hooks per block x 3 blocks + embed, pos_embed, ln_final scale/normalized.
  assert.equal(checked, 17 * 3 + 4);
  // Every default hook point has a gradient.
  assert.equal(run.grads.names.length, run.cache.names.length);
});

// ---- central finite differences on random checkpoints ---------------------------------------------

const config: ModelConfig = gpt2Config({
  nLayers: 2,
  nHeads: 3,
  dModel: 24,
  dHead: 8,
  dMlp: 48,
  nCtx: 16,
  dVocab: 50257, // GPT-2's vocabulary, so the tokenizer's ids (BOS is 50256) are valid; padding uses id 0
  lnEps: 1e-5,
  act: "gelu_new",
});

/** Llama-family shapes: GQA with rotary and a gated MLP; Qwen2's q/k/v biases with one key/value head. */
const LLAMA_GQA = parseHfConfig(LLAMA_VARIANTS[0].json, LLAMA_VARIANTS[0].name);
const QWEN2_MQA = parseHfConfig(LLAMA_VARIANTS[2].json, LLAMA_VARIANTS[2].name);

function randomModel(
  name: string,
  seed: number,
  processing: boolean,
  cfg: ModelConfig = config,
  std = 0.3,
): HookedTransformer {
  const dir = join(tmp, name);
  // std 0.3 keeps activations and gradients O(1), so float32 round-off is small relative to them. (The
  // gated MLP multiplies two projections: std 0.2 keeps its curvature low enough for a 1e-2 step.)
  makeRandomCheckpoint(dir, cfg, { seed, std });
  return HookedTransformer.fromCheckpoint(loadCheckpoint(dir), {
    processing: processing ? undefined : false,
  });
}

/** The metric after adding `delta` to the activation at `hook` (via a forward hook on a copy). */
function metricWithNudge(
  model: HookedTransformer,
  tokens: number[][],
  metric: LogitMetric,
  hooks: HookSpec[],
): number {
  const last = model.run(tokens, { fwdHooks: hooks, logits: "last" });
  return metric.value(new Tensor(last.data, [last.shape[0], last.shape[2]]));
}

function nudge(hook: string, apply: (data: Float32Array) => void): HookSpec {
  return [
    hook,
    (act) => {
      const copy = act.clone();
      apply(copy.data);
      return copy;
    },
  ];
}

/**
 * `ln*.hook_scale` is an output our forward does not read back (normalized is computed before the hook
 * fires), so scale is nudged through its only consumer: normalized = (x_c / s)·w + b, hence
 * s → s + h multiplies (normalized - b) by s / (s + h).
 */
function scaleNudge(model: HookedTransformer, hook: string, row: number, h: number): HookSpec[] {
  const lnName = hook.replace(".hook_scale", "");
  const layer = /^blocks\.(\d+)\./.exec(hook);
  const ln =
    lnName === "ln_final"
      ? model.weights.lnFinal
      : model.weights.blocks[Number(layer![1])][lnName.endsWith("ln1") ? "ln1" : "ln2"];
  let s = 0;
  const D = model.cfg.dModel;
  return [
    [
      hook,
      (act) => {
        s = act.data[row];
      },
    ],
    nudge(`${lnName}.hook_normalized`, (y) => {
      const f = s / (s + h);
      for (let d = 0; d < D; d++) {
        const b = ln ? ln.b.data[d] : 0;
        y[row * D + d] = (y[row * D + d] - b) * f + b;
      }
    }),
  ];
}

/*
 * Tolerance. The forward runs in float32: the metric carries round-off of order 1e-6 (a few ulps of O(1)
 * logits after ~100-term sums), so a central difference with step h has round-off error ~1e-6 / h and
 * truncation error ~h² f''' / 6. With h = 1e-2 both are ~1e-4; we allow 2e-3 + 2e-2·|grad|, an order of
 * magnitude above that yet far below the gradients themselves (O(0.1–1)), so a wrong rule (a missing
 * path, a sign, a factor of sqrt(dh)) fails.
 */
const H_STEP = 1e-2;
const tolerance = (g: number) => 2e-3 + 2e-2 * Math.abs(g);

for (const { processed, metricName, family, cfg } of [
  { processed: true, metricName: "logit diff (sparse seed)", family: "gpt2", cfg: config },
  { processed: false, metricName: "answer log-prob (dense seed)", family: "gpt2", cfg: config },
  { processed: false, metricName: "answer log-prob (dense seed)", family: "llama GQA 4/2", cfg: LLAMA_GQA },
  { processed: true, metricName: "logit diff (sparse seed)", family: "llama GQA 4/2", cfg: LLAMA_GQA },
  {
    processed: false,
    metricName: "answer log-prob (dense seed)",
    family: "qwen2 biases, MQA",
    cfg: QWEN2_MQA,
  },
]) {
  test(`gradients agree with central finite differences (${family}, ${processed ? "processed" : "unprocessed, norms with weights"}, ${metricName})`, () => {
    const name = `${family}-${processed ? "processed" : "raw"}-${metricName}`.replace(/[^a-z0-9]+/gi, "-");
    const model = randomModel(name, processed ? 11 : 12, processed, cfg, family === "gpt2" ? 0.3 : 0.2);
    const rng = mulberry32(processed ? 5 : 6);
    const tok = () => Math.floor(rng() * cfg.dVocab);
    // Two prompts of different lengths: padding and per-prompt final positions are exercised too.
    const tokens = [Array.from({ length: 7 }, tok), Array.from({ length: 5 }, tok)];
    const metric = processed ? logitDiffMetric([tok(), tok()], [tok(), tok()]) : answerLogProbMetric(tok());
    const run = runWithGradients(model, tokens, metric);
    let largest = 0;
    // Every default hook of the model (rot_q/rot_k and pre_linear too for the Llama family).
    const hooks = allHookNames(model.cfg);
    assert.equal(run.grads.names.length, hooks.length);
    for (const hook of hooks) {
      const act = run.cache.get(hook);
      const grad = run.grads.get(hook);
      assert.deepEqual(grad.shape, act.shape, hook);
      const isScale = hook.endsWith("hook_scale");
      // Three random coordinates, plus the largest-gradient one (so every hook is tested where it matters).
      let argmax = 0;
      for (let i = 0; i < grad.size; i++)
        if (Math.abs(grad.data[i]) > Math.abs(grad.data[argmax])) argmax = i;
      const coords = [argmax, ...Array.from({ length: 3 }, () => Math.floor(rng() * act.size))];
      for (const i of coords) {
        if (!Number.isFinite(act.data[i])) continue; // masked attention scores (-inf): no neighbourhood
        const at = (step: number) =>
          metricWithNudge(
            model,
            tokens,
            metric,
            isScale
              ? scaleNudge(model, hook, i, step)
              : [
                  nudge(hook, (d) => {
                    d[i] += step;
                  }),
                ],
          );
        // LN scales are O(0.3) and everything downstream scales with 1/s: a proportionally smaller step.
        const h = isScale ? H_STEP / 5 : H_STEP;
        const fd = (at(h) - at(-h)) / (2 * h);
        const g = grad.data[i];
        largest = Math.max(largest, Math.abs(g));
        assert.ok(Math.abs(fd - g) <= tolerance(g), `${hook}[${i}]: backward ${g}, finite difference ${fd}`);
      }
      // A random direction over the whole tensor: checks every element's gradient at once.
      // (Not for scores, whose masked entries are -inf, nor scales, nudged one row at a time above.)
      if (!isScale && !hook.endsWith("attn_scores")) {
        const dir = Float32Array.from({ length: act.size }, () => randn(rng));
        const at = (h: number) =>
          metricWithNudge(model, tokens, metric, [
            nudge(hook, (d) => {
              for (let i = 0; i < d.length; i++) d[i] += h * dir[i];
            }),
          ]);
        const fd = (at(H_STEP / 4) - at(-H_STEP / 4)) / (H_STEP / 2);
        let g = 0;
        for (let i = 0; i < dir.length; i++) g += dir[i] * grad.data[i];
        assert.ok(
          Math.abs(fd - g) <= tolerance(g),
          `${hook} along a random direction: backward ${g}, finite difference ${fd}`,
        );
      }
    }
    assert.ok(largest > 0.05, `gradients are not all negligible (largest ${largest})`);
  });
}
