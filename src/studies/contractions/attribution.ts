/**
 * Attribution patching per prompt: the first-order estimate of patching a slice of an activation,
 * (clean - corrupted activation) · d(logit diff)/d(activation) on the corrupted run. One forward and one
 * backward pass per batch estimate every site at once, which is how the study screens candidates
 * before confirming the top ones with exact patching.
 */
import { runWithGradients } from "../../gradients/backward.ts";
import { logitDiffMetric } from "../../gradients/logit-metric.ts";
import type { ActivationCache } from "../../model/activation-cache.ts";
import type { HookedTransformer } from "../../model/hooked-transformer.ts";
import type { PairTokens, PatchTarget, Tick } from "./measures.ts";

/** Σ over the target's slice of (clean - corrupted) * grad, for prompt b. */
function sliceDot(
  hook: string,
  t: PatchTarget,
  clean: ActivationCache,
  corrupted: ActivationCache,
  grads: ActivationCache,
  b: number,
): number {
  const c = clean.get(hook);
  const x = corrupted.get(hook);
  const g = grads.get(hook);
  const shape = c.shape;
  let s = 0;
  if (/attn\.hook_(pattern|attn_scores)$/.test(hook)) {
    const [, H, Q, K] = shape;
    for (let h = 0; h < H; h++) {
      if (t.head !== undefined && h !== t.head) continue;
      for (let q = 0; q < Q; q++) {
        if (t.position !== undefined && q !== t.position) continue;
        const off = ((b * H + h) * Q + q) * K;
        for (let k = 0; k < K; k++) s += (c.data[off + k] - x.data[off + k]) * g.data[off + k];
      }
    }
    return s;
  }
  const P = shape[1];
  const inner = c.size / (shape[0] * P);
  const H = /attn\.hook_(q|k|v|z|result)$/.test(hook) ? shape[2] : 1;
  const w = inner / H;
  for (let p = 0; p < P; p++) {
    if (t.position !== undefined && p !== t.position) continue;
    for (let h = 0; h < H; h++) {
      if (t.head !== undefined && h !== t.head) continue;
      const off = (b * P + p) * inner + h * w;
      if (t.neuron !== undefined) {
        s += (c.data[off + t.neuron] - x.data[off + t.neuron]) * g.data[off + t.neuron];
      } else {
        for (let i = 0; i < w; i++) s += (c.data[off + i] - x.data[off + i]) * g.data[off + i];
      }
    }
  }
  return s;
}

/**
 * Per-prompt attribution estimates [target][prompt] of `patched - corrupted` logit difference (the same
 * quantity `exactPatching` measures exactly). The metric is the batch-mean logit difference, whose
 * gradient for prompt b is (1/B) d(logit diff_b); prompts do not interact, so multiplying by B gives
 * each prompt's own estimate.
 */
export function attributionPatching(
  model: HookedTransformer,
  pairs: PairTokens,
  targets: readonly PatchTarget[],
  batchSize: number,
  tick: Tick = () => {},
): number[][] {
  const out: number[][] = targets.map(() => []);
  const hooks = new Set(targets.map((t) => `blocks.${t.layer}.${t.hook}`));
  for (let s = 0; s < pairs.clean.length; s += batchSize) {
    const e = Math.min(pairs.clean.length, s + batchSize);
    const B = e - s;
    const metric = logitDiffMetric(pairs.answer.slice(s, e), pairs.wrong.slice(s, e));
    const { cache: corrupted, grads } = runWithGradients(model, pairs.corrupted.slice(s, e), metric);
    const { cache: clean } = model.runWithCache(pairs.clean.slice(s, e), {
      namesFilter: (n) => hooks.has(n),
      logits: "none",
    });
    targets.forEach((t, i) => {
      const hook = `blocks.${t.layer}.${t.hook}`;
      for (let b = 0; b < B; b++) out[i].push(B * sliceDot(hook, t, clean, corrupted, grads, b));
    });
    tick(B);
  }
  return out;
}
