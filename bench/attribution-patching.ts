/**
 * Attribution-patching benchmark (for `circuitscope bench`): on a GPT-2-small-shaped random model with
 * an 8-token clean/corrupted pair, the time of one forward + backward pass, and of attribution patching
 * of every target family at once (residual [layer, pos], every head's z/q/k/v/pattern, every neuron of
 * every layer). Target: the latter within 3x the former and under 10 s.
 */

import { runWithGradients } from "../src/gradients/backward.ts";
import { logitDiffMetric } from "../src/gradients/logit-metric.ts";
import type { HookedTransformer } from "../src/model/hooked-transformer.ts";
import { type AttributionTarget, attributionPatchingAll } from "../src/patching/attribution-patching.ts";
import type { KernelName } from "../src/tensor/kernels.ts";
import { medianMs, randomGpt2Small } from "./gpt2-small.ts";

export interface AttributionBenchResult {
  attribution_all_s: number;
  forward_backward_1x8_ms: number;
}

export const ALL_ATTRIBUTION_TARGETS: readonly AttributionTarget[] = [
  { kind: "resid_pre" },
  { kind: "attn_out" },
  { kind: "mlp_out" },
  { kind: "head_all" },
  { kind: "neurons" },
];

export function benchAttribution(
  model: HookedTransformer | null = null,
  opts: { backend?: KernelName; runs?: number; log?: (line: string) => void } = {},
): AttributionBenchResult {
  const m = model ?? randomGpt2Small({ backend: opts.backend ?? "onnx" });
  const log = opts.log ?? (() => {});
  const runs = opts.runs ?? 3;
  const clean = m.toTokens("We're helping our friend while they");
  const corrupted = m.toTokens("We are helping our friend while they");
  if (clean.length !== 8 || corrupted.length !== 8) throw new Error("bench pair is not 8 tokens");
  const answers = { answer: m.toSingleToken("'re"), wrong: m.toSingleToken(" are") };
  const metric = logitDiffMetric(answers.answer, answers.wrong);

  const fwdBwd = medianMs(() => runWithGradients(m, [corrupted], metric), runs);
  log(`forward + backward 1x8: ${fwdBwd.toFixed(1)} ms`);
  const all = medianMs(
    () =>
      attributionPatchingAll(m, {
        clean: [clean],
        corrupted: [corrupted],
        answers,
        targets: ALL_ATTRIBUTION_TARGETS,
      }),
    runs,
  );
  log(
    `attribution of every residual cell, head (z/q/k/v/pattern) and neuron: ${(all / 1000).toFixed(2)} s ` +
      `(${(all / fwdBwd).toFixed(1)}x one forward + backward)`,
  );
  if (!model) m.dispose();
  return { attribution_all_s: all / 1000, forward_backward_1x8_ms: fwdBwd };
}
