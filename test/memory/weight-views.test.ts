/**
 * Weight views read a matrix back from the kernels on use and keep only the last few read: a loop over
 * the layers, reading one view each in a single synchronous stretch, must not hold every layer's matrix
 * (WeakRef-cached views did, until the job ended).
 */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { HookedTransformer } from "../../src/model/hooked-transformer.ts";
import { collectGarbage } from "../../src/util/collect-garbage.ts";
import { loadCheckpoint, makeRandomCheckpoint } from "../../src/weights/checkpoint.ts";
import { gpt2Config } from "../../src/weights/families/gpt2.ts";

const root = mkdtempSync(join(tmpdir(), "cs-weight-views-"));
after(() => rmSync(root, { recursive: true, force: true }));

// 24 layers whose W_out [1024, 64] is 256 KB each: 6 MB if every layer's were kept.
const shape = { nLayers: 24, nHeads: 2, dModel: 64, dHead: 32, dMlp: 1024, nCtx: 16, dVocab: 50257 };
const dir = join(root, "m");
makeRandomCheckpoint(dir, gpt2Config({ ...shape, lnEps: 1e-5, act: "gelu_new" }), { seed: 3 });
const W_OUT_BYTES = 4 * shape.dMlp * shape.dModel;

test("a view read again is the same matrix; read after four others, it is read back again, equal", async () => {
  const model = await HookedTransformer.fromPretrained(dir, { backend: "onnx" });
  const held = HookedTransformer.fromCheckpoint(loadCheckpoint(dir), { backend: "reference" });
  try {
    const first = model.weights.blocks[0].W_out;
    assert.equal(model.weights.blocks[0].W_out, first, "kept while recent");
    for (let l = 1; l <= 4; l++) model.weights.blocks[l].W_out;
    const again = model.weights.blocks[0].W_out;
    assert.notEqual(again, first, "dropped after four later reads (the caller's reference keeps its own)");
    assert.deepEqual(again.data, first.data);
    // What comes back is the model's weight (the reference backend holds the processed one as given).
    assert.deepEqual(again.data, held.weights.blocks[0].W_out.data);
    assert.deepEqual(model.weights.blocks[7].W_Q.data, held.weights.blocks[7].W_Q.data);
  } finally {
    model.dispose();
    held.dispose();
  }
});

test("one synchronous pass over every layer's W_out keeps at most a few of them", async () => {
  const model = await HookedTransformer.fromPretrained(dir, { backend: "onnx" });
  try {
    collectGarbage();
    const before = process.memoryUsage().arrayBuffers;
    let sum = 0;
    for (let l = 0; l < shape.nLayers; l++) sum += model.weights.blocks[l].W_out.data[0];
    collectGarbage(); // same job: anything a WeakRef touched survives this
    const grown = process.memoryUsage().arrayBuffers - before;
    assert.ok(Number.isFinite(sum));
    assert.ok(
      grown < 6 * W_OUT_BYTES,
      `array buffers grew ${(grown / 2 ** 20).toFixed(1)} MB over a pass reading ${shape.nLayers} × ${W_OUT_BYTES / 1024} KB`,
    );
  } finally {
    model.dispose();
  }
});
