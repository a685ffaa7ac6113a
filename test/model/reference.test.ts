import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { KERNEL_NAMES } from "../../src/tensor/kernels.ts";
import {
  loadFixtureModel,
  maxAbsDiff,
  referenceJson,
  referenceTensor,
  referenceTensors,
} from "../helpers/reference.ts";

const ATOL = 1e-4;

for (const backend of KERNEL_NAMES) {
  describe(`fixture model vs the float64 reference (${backend} kernels)`, () => {
    test("unprocessed logits", () => {
      const model = loadFixtureModel({ backend, processing: false });
      const logits = model.run(referenceJson.prompts.clean_tokens);
      assert.ok(maxAbsDiff(logits, referenceTensor("unprocessed.logits")) < ATOL);
    });

    test("processed logits and every hook activation", () => {
      const model = loadFixtureModel({ backend });
      const { logits, cache } = model.runWithCache(referenceJson.prompts.clean_tokens);
      assert.ok(maxAbsDiff(logits!, referenceTensor("processed.logits")) < ATOL);
      let checked = 0;
      for (const [name, ref] of referenceTensors()) {
        if (!name.startsWith("processed.cache.")) continue;
        const hook = name.slice("processed.cache.".length);
        const mine = cache.get(hook);
        assert.deepEqual(mine.shape, ref.shape, hook);
        const d = maxAbsDiff(mine, ref);
        assert.ok(d < ATOL, `${hook}: max |diff| ${d}`);
        checked++;
      }
      // Every hook of the model (no optional ones) is in the reference: 2 + 17 per layer + 2.
      assert.equal(checked, 2 + 17 * model.cfg.nLayers + 2);
      assert.equal(cache.names.length, checked);
    });
  });
}
