/** Comparing an engine's padded-batch hook values with a float64 reference's single-prompt ones. */
import assert from "node:assert/strict";
import { allHookNames } from "../../src/model/hook-points.ts";
import type { HookedTransformer } from "../../src/model/hooked-transformer.ts";
import type { Tensor } from "../../src/tensor/tensor.ts";

/** Prompt b's part of a padded batch activation: [1, n, ...] (or [1, H, n, n] for scores and patterns). */
export function promptSlice(name: string, t: Tensor, b: number, n: number): Float32Array {
  const [B, ...rest] = t.shape;
  const per = t.data.length / B;
  const x = t.data.subarray(b * per, (b + 1) * per);
  if (/hook_(attn_scores|pattern)$/.test(name)) {
    const [H, P] = rest;
    const out = new Float32Array(H * n * n);
    for (let h = 0; h < H; h++)
      for (let i = 0; i < n; i++) out.set(x.subarray((h * P + i) * P, (h * P + i) * P + n), (h * n + i) * n);
    return out;
  }
  const P = rest[0];
  return x.subarray(0, (per / P) * n);
}

/** Largest |a - b| / max(1, |b|) (equal infinities equal). */
export function relDiff(a: Float32Array, b: Float64Array): number {
  assert.equal(a.length, b.length);
  let worst = 0;
  for (let i = 0; i < a.length; i++) {
    if (a[i] === b[i]) continue;
    const d = Math.abs(a[i] - b[i]) / Math.max(1, Math.abs(b[i]));
    worst = Number.isNaN(d) ? Number.POSITIVE_INFINITY : Math.max(worst, d);
  }
  return worst;
}

/**
 * Runs `model` on the padded batch `prompts` caching every hook, and checks that the hook names are the
 * model's (TransformerLens' order) and that every hook and the logits of each prompt equal `reference`
 * (one prompt's float64 activations, with "logits") to a relative 1e-4. `label` names the run in errors.
 */
export function assertEveryHookMatches(
  model: HookedTransformer,
  prompts: number[][],
  reference: (tokens: number[]) => Map<string, { data: Float64Array }>,
  label: string,
): void {
  const { cache, logits } = model.runWithCache(prompts, { namesFilter: () => true });
  const names = cache.names.filter((n) => !n.endsWith("attn.hook_result"));
  assert.deepEqual(names, allHookNames(model.cfg), "TransformerLens' hook names, in forward order");
  prompts.forEach((tokens, b) => {
    const ref = reference(tokens);
    assert.deepEqual([...names].sort(), [...ref.keys()].filter((n) => n !== "logits").sort());
    for (const name of [...names, "logits"]) {
      const got = name === "logits" ? logits! : cache.get(name);
      const d = relDiff(promptSlice(name, got, b, tokens.length), ref.get(name)!.data);
      assert.ok(d < 1e-4, `${name} (prompt ${b}, ${label}): ${d}`);
    }
  });
}
