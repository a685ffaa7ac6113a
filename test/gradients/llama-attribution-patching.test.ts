/**
 * Attribution patching on stories260k (RMSNorm, rotary, GQA, gated MLP): every target runs with exact
 * patching's shapes, and where the metric is exactly linear in the patched activation (ln_final's output)
 * the first-order estimate equals exact patching.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { test } from "node:test";
import { HookedTransformer } from "../../src/model/hooked-transformer.ts";
import { activationPatching } from "../../src/patching/activation-patching.ts";
import { compareAttribution } from "../../src/patching/attribution-compare.ts";
import { type AttributionTarget, attributionPatchingAll } from "../../src/patching/attribution-patching.ts";
import { REPO_ROOT } from "../helpers/fixture.ts";
import { referenceEncode } from "../helpers/llama-reference.ts";

const STORIES = join(REPO_ROOT, "models/stories260k");
const model = await HookedTransformer.fromPretrained("stories260k");
const pair = {
  clean: [referenceEncode(STORIES, "Once upon a time, Lily was happy. Then")],
  corrupted: [referenceEncode(STORIES, "Once upon a time, Tim was happy. Then")],
  answers: { answer: 358, wrong: 281 }, // ▁she, ▁he
};

test("every target: the exact-patching shape (k/v per key/value head), finite, not all zero", async () => {
  const targets: AttributionTarget[] = [
    { kind: "resid_pre" },
    { kind: "attn_out" },
    { kind: "mlp_out" },
    ...(["z", "q", "k", "v", "pattern"] as const).map((component) => ({ kind: "head" as const, component })),
    { kind: "head_all" },
    { kind: "neurons" },
    {
      kind: "sites",
      sites: [
        { hook: "blocks.2.attn.hook_rot_q", selectors: [[null, 1, null]] },
        { hook: "blocks.2.attn.hook_rot_k", selectors: [[null, 0, null]] },
        { hook: "blocks.1.mlp.hook_pre_linear", selectors: [[null, 7]] },
      ],
    },
  ];
  const results = attributionPatchingAll(model, { ...pair, targets });
  for (const [i, r] of results.entries()) {
    const t = targets[i];
    if (t.kind === "neurons") continue;
    const exact = await activationPatching(model, { ...pair, target: t });
    assert.deepEqual(r.shape, exact.shape, r.target);
    assert.deepEqual(r.axes, exact.axes, r.target);
  }
  assert.deepEqual(results[5].axes, ["layer", "kv_head"]);
  assert.deepEqual(results[5].shape, [5, 4]);
  assert.deepEqual(results[8].shape, [5, 5, 8]);
  assert.deepEqual(results[9].shape, [5, 172]);
  for (const r of results) {
    assert.ok(r.values.every(Number.isFinite), r.target);
    assert.ok(
      r.values.some((v) => Math.abs(v) > 1e-3),
      `${r.target}: some estimate is nonzero`,
    );
  }
});

test("where the metric is linear in the patch (ln_final's output) the estimate is exact", async () => {
  const n = pair.clean[0].length;
  const indexSets = [];
  for (let pos = n - 3; pos < n; pos++)
    for (let c = 0; c < 8; c++) indexSets.push([[pos, 8 * c] as const, [pos, 8 * c + 5] as const]);
  const [cmp] = await compareAttribution(model, {
    ...pair,
    targets: [{ kind: "custom", hook: "ln_final.hook_normalized", indexSets }],
  });
  assert.ok(Math.abs(cmp.correlation - 1) < 1e-6, `correlation ${cmp.correlation}`);
  assert.ok(Math.abs(cmp.slope - 1) < 1e-4, `slope ${cmp.slope}`);
  assert.ok(
    cmp.exact.values.some((v) => Math.abs(v) > 0.01),
    "the final-position sets move the metric",
  );
});
