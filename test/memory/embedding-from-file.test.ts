import assert from "node:assert/strict";
import { cpSync, mkdtempSync, rmSync, utimesSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { HookedTransformer, type LoadOptions } from "../../src/model/hooked-transformer.ts";
import { collectGarbage } from "../../src/util/collect-garbage.ts";
import { loadCheckpoint } from "../../src/weights/checkpoint.ts";
import { FIXTURE_DIR } from "../helpers/fixture.ts";
import { LLAMA_VARIANTS, makeVariantCheckpoint } from "../helpers/llama-variants.ts";

const root = mkdtempSync(join(tmpdir(), "cs-embedding-file-"));
after(() => rmSync(root, { recursive: true, force: true }));

const PROMPTS = ["Once upon a time there", "We're helping our friend while they"];

/**
 * A model loaded from its directory reads W_E's rows from the safetensors file; one built from tensors
 * in memory holds W_E. Both must be the same model: the same processed W_E, bit for bit, and the same logits.
 */
async function assertFileBackedSameAsInMemory(dir: string, opts: LoadOptions): Promise<void> {
  const fromFile = await HookedTransformer.fromPretrained(dir, opts);
  const inMemory = HookedTransformer.fromCheckpoint(loadCheckpoint(dir), opts);
  try {
    assert.deepEqual(fromFile.weights.W_E.shape, inMemory.weights.W_E.shape);
    assert.deepEqual(fromFile.weights.W_E.data, inMemory.weights.W_E.data, "W_E read from the file");
    assert.deepEqual(fromFile.run(PROMPTS).data, inMemory.run(PROMPTS).data, "logits");
  } finally {
    fromFile.dispose();
    inMemory.dispose();
  }
}

test("GPT-2 (centred W_E): rows read from the file equal the processed W_E; unprocessed too", async () => {
  await assertFileBackedSameAsInMemory(FIXTURE_DIR, {});
  await assertFileBackedSameAsInMemory(FIXTURE_DIR, { processing: false });
  // Processing changes W_E here (LayerNorm model: rows centred), so the comparison above is not vacuous.
  const processed = await HookedTransformer.fromPretrained(FIXTURE_DIR);
  const raw = await HookedTransformer.fromPretrained(FIXTURE_DIR, { processing: false });
  assert.notDeepEqual(processed.weights.W_E.data.subarray(0, 64), raw.weights.W_E.data.subarray(0, 64));
  processed.dispose();
  raw.dispose();
});

test("Llama family stored as F16 and BF16: rows converted as the whole tensor is", async () => {
  const variants = LLAMA_VARIANTS.map((v, i) => ({ v, i })).filter(({ v }) => v.dtype !== "F32");
  assert.ok(variants.length >= 2);
  for (const { i } of variants) {
    const { dir } = makeVariantCheckpoint(root, i);
    await assertFileBackedSameAsInMemory(dir, {});
  }
});

test("a loaded model keeps no JavaScript copy of W_E or of the matrices the kernels hold", async () => {
  // The fixture is 13.5 MB of float32, 12.9 MB of it W_E [50257, 64].
  collectGarbage();
  const before = process.memoryUsage().arrayBuffers;
  const model = await HookedTransformer.fromPretrained(FIXTURE_DIR, { backend: "onnx" });
  model.run(PROMPTS[0]);
  collectGarbage();
  const grown = process.memoryUsage().arrayBuffers - before;
  const W_E_bytes = 50257 * 64 * 4;
  assert.ok(grown < W_E_bytes / 8, `array buffers grew by ${grown} bytes (W_E is ${W_E_bytes})`);
  model.dispose();
});

test("a checkpoint file replaced under a loaded model is named, not read as garbage", async () => {
  const dir = join(root, "replaced");
  cpSync(FIXTURE_DIR, dir, { recursive: true });
  const model = await HookedTransformer.fromPretrained(dir);
  const logits = model.run(PROMPTS[0]).data;
  const later = new Date(Date.now() + 5000);
  utimesSync(join(dir, "model.safetensors"), later, later);
  assert.throws(
    () => model.run(PROMPTS[0]),
    /model\.safetensors changed on disk after the model was loaded.*load the model again/,
  );
  model.dispose();
  const again = await HookedTransformer.fromPretrained(dir);
  assert.deepEqual(again.run(PROMPTS[0]).data, logits);
  again.dispose();
});
