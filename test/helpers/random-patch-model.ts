/**
 * A small random GPT-2 with large weights (so patches move the logits visibly) and two prompt pairs of
 * different lengths (a padded batch), shared by the patching tests that compare paths and references.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after } from "node:test";
import { HookedTransformer } from "../../src/model/hooked-transformer.ts";
import type { PatchSweepOptions } from "../../src/patching/activation-patching.ts";
import { loadCheckpoint, makeRandomCheckpoint } from "../../src/weights/checkpoint.ts";
import type { ModelConfig } from "../../src/weights/config.ts";
import { gpt2Config } from "../../src/weights/families/gpt2.ts";

export const RANDOM_PATCH_CFG: ModelConfig = gpt2Config({
  nLayers: 3,
  nHeads: 4,
  dModel: 32,
  dHead: 8,
  dMlp: 48,
  nCtx: 16,
  dVocab: 50257, // GPT-2's vocabulary, so the tokenizer's ids (BOS is 50256) are valid; padding uses id 0
  lnEps: 1e-5,
  act: "gelu_new",
});

/** The processed model (default backend) and the unprocessed one on the reference backend; removed after the file's tests. */
export function randomPatchModels(): { processed: HookedTransformer; unprocessed: HookedTransformer } {
  const dir = mkdtempSync(join(tmpdir(), "patch-test-"));
  after(() => rmSync(dir, { recursive: true, force: true }));
  makeRandomCheckpoint(dir, RANDOM_PATCH_CFG, { seed: 7, std: 0.25 });
  // Converting consumes a checkpoint's tensors, so each model loads its own.
  return {
    processed: HookedTransformer.fromCheckpoint(loadCheckpoint(dir)),
    unprocessed: HookedTransformer.fromCheckpoint(loadCheckpoint(dir), {
      backend: "reference",
      processing: false,
    }),
  };
}

/** Two pairs of different lengths (a padded batch); they differ first at position 2 and 1. */
export const RANDOM_PATCH_PAIRS: Omit<PatchSweepOptions, "target"> = {
  clean: [
    [5, 17, 33, 8, 90, 4, 61],
    [9, 2, 44, 61],
  ],
  corrupted: [
    [5, 17, 71, 8, 90, 4, 61],
    [9, 12, 44, 61],
  ],
  answers: { answer: [3, 7], wrong: [11, 3] },
  chunkSize: 5, // several chunks per group
};
