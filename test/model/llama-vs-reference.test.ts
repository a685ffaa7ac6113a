/**
 * The engine against the independent float64 Llama-family reference (test/helpers/llama-reference.ts):
 * every hook, raw and processed, on the bundled stories260k and on random checkpoints of each variant.
 */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import { HookedTransformer } from "../../src/model/hooked-transformer.ts";
import type { Tensor } from "../../src/tensor/tensor.ts";
import { loadCheckpoint } from "../../src/weights/checkpoint.ts";
import { REPO_ROOT } from "../helpers/fixture.ts";
import { promptSlice, relDiff } from "../helpers/hook-compare.ts";
import {
  llamaReferenceFromTensors,
  type RefTensor,
  readHfTensors,
  readLlamaRefConfig,
  referenceEncode,
} from "../helpers/llama-reference.ts";
import { LLAMA_VARIANTS, makeVariantCheckpoint } from "../helpers/llama-variants.ts";

const STORIES = join(REPO_ROOT, "models/stories260k");
const root = mkdtempSync(join(tmpdir(), "circuitscope-llama-ref-"));
after(() => rmSync(root, { recursive: true, force: true }));

/** Runs the engine (fast backend) on a padded batch and compares every hook of every prompt with the reference. */
function compareEveryHook(dir: string, prompts: number[][], processed: boolean): number {
  const model = HookedTransformer.fromCheckpoint(loadCheckpoint(dir), {
    processing: processed ? undefined : false,
  });
  const c = readLlamaRefConfig(dir);
  const tensors = readHfTensors(dir);
  const { cache, logits } = model.runWithCache(prompts, { namesFilter: () => true });
  let compared = 0;
  prompts.forEach((tokens, b) => {
    const ref = llamaReferenceFromTensors(c, tensors, tokens, { processed });
    const names = cache.names.filter((n) => !n.endsWith("attn.hook_result"));
    // The engine has exactly the reference's hooks (hook_result aside: optional, checked through attn_out).
    assert.deepEqual([...names].sort(), [...ref.keys()].filter((n) => n !== "logits").sort(), "hook names");
    const check = (name: string, got: Tensor, want: RefTensor) => {
      const n = tokens.length;
      const d = relDiff(promptSlice(name, got, b, n), want.data);
      assert.ok(
        d < 1e-4,
        `${name} (prompt ${b}, ${processed ? "processed" : "raw"}): relative difference ${d}`,
      );
      compared++;
    };
    for (const name of names) check(name, cache.get(name), ref.get(name)!);
    check("logits", logits!, ref.get("logits")!);
  });
  model.dispose();
  return compared;
}

describe("engine vs independent float64 reference, every hook at 1e-4", () => {
  const stories = [
    referenceEncode(STORIES, "Once upon a time, there was a little girl named Lily."),
    referenceEncode(STORIES, "She saw a big, red ball."),
  ];
  for (const processed of [false, true]) {
    test(`stories260k (${processed ? "processed" : "raw"})`, () => {
      const n = compareEveryHook(STORIES, stories, processed);
      // 5 blocks x 20 hooks + embed + ln_final scale/normalized + logits, per prompt.
      assert.equal(n, 2 * (5 * 20 + 4));
    });
  }

  LLAMA_VARIANTS.forEach((v, i) => {
    test(`random ${v.name}: raw and processed`, () => {
      const { dir } = makeVariantCheckpoint(root, i);
      const prompts = [
        [1, 17, 200, 45, 9, 88, 120, 511, 3],
        [1, 250, 2, 77, 5],
      ];
      for (const processed of [false, true]) assert.ok(compareEveryHook(dir, prompts, processed) > 0);
    });
  });
});
