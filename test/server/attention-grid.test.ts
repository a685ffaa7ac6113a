/**
 * The explorer's all-heads attention answer on the bundled Llama (grouped-query: 8 query heads share 4
 * key/value heads, and each query head has its own pattern), and the bound on an all-heads answer's size.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { HookedTransformer } from "../../src/model/hooked-transformer.ts";
import { attentionTask } from "../../src/server/tasks.ts";
import { MAX_ALL_HEADS_VALUES, RequestChecks } from "../../src/server/validate.ts";
import { gpt2Tokenizer } from "../../src/tokenizer/tokenizer.ts";
import type { ModelShape } from "../../src/weights/config.ts";

test("stories260k: one pattern per query head, each equal to blocks.L.attn.hook_pattern of an in-process run", async () => {
  const model = await HookedTransformer.fromPretrained("stories260k", { backend: "reference" });
  const { nLayers, nHeads } = model.cfg;
  const prompt = "Lily was happy because";
  const fig = attentionTask(model, { prompt, heads: "all" });
  assert.equal(fig.data.heads.length, nLayers * nHeads);
  assert.equal(nHeads, 8, "query heads, not the 4 key/value heads");
  const names = Array.from({ length: nLayers }, (_, l) => `blocks.${l}.attn.hook_pattern`);
  const { cache } = model.runWithCache(prompt, { namesFilter: names });
  const n = fig.data.tokens.length;
  let differs = false; // heads that share keys still attend differently (their queries differ)
  fig.data.heads.forEach(({ label, pattern }, k) => {
    const [layer, head] = [Math.floor(k / nHeads), k % nHeads];
    assert.equal(label, `L${layer}H${head}`);
    const ref = cache.get(`blocks.${layer}.attn.hook_pattern`).data; // [1, H, n, n]
    for (let d = 0; d < n; d++)
      for (let s = 0; s < n; s++) {
        assert.ok(Math.abs(pattern[d][s] - ref[(head * n + d) * n + s]) < 1e-6, `${label} [${d}][${s}]`);
        if (head % 2 === 1 && Math.abs(pattern[d][s] - ref[((head - 1) * n + d) * n + s]) > 1e-3)
          differs = true;
      }
  });
  assert.ok(differs, "query heads sharing a key/value head have different patterns");
});

test("an all-heads answer is bounded: a 12 x 12-head model takes 85 tokens, not 86, with a fix", () => {
  const cfg = { nLayers: 12, nHeads: 12, nCtx: 1024, dMlp: 3072 } as ModelShape;
  const checks = new RequestChecks(cfg, gpt2Tokenizer());
  assert.ok(144 * 85 * 85 <= MAX_ALL_HEADS_VALUES && 144 * 86 * 86 > MAX_ALL_HEADS_VALUES);
  checks.allHeadsFit(64);
  checks.allHeadsFit(85);
  assert.throws(
    () => checks.allHeadsFit(86),
    (err: Error & { status?: number; fix?: string }) => {
      assert.equal(err.status, 400);
      assert.match(err.message, /144 × 86 × 86 = 1065024 weights/);
      assert.match(err.fix ?? "", /at most 84 tokens of text.*one head/);
      return true;
    },
  );
});
