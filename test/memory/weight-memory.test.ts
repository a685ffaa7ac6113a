import assert from "node:assert/strict";
import { cpSync, existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { HookedTransformer } from "../../src/model/hooked-transformer.ts";
import { processWeights, resolveProcessing } from "../../src/model/processing.ts";
import { activationPatching } from "../../src/patching/activation-patching.ts";
import { rowBudgetFor } from "../../src/patching/fast-patching.ts";
import { MemoryBudgetError, parseByteSize } from "../../src/util/memory-budget.ts";
import { loadCheckpoint } from "../../src/weights/checkpoint.ts";
import { convertWeights, mapSource } from "../../src/weights/families/index.ts";
import { SafetensorsReader } from "../../src/weights/safetensors.ts";
import { runCli } from "../helpers/cli.ts";
import { FIXTURE_DIR } from "../helpers/fixture.ts";
import { LLAMA_VARIANTS, makeVariantCheckpoint } from "../helpers/llama-variants.ts";

const root = mkdtempSync(join(tmpdir(), "cs-weight-memory-"));
after(() => rmSync(root, { recursive: true, force: true }));

const MATRICES = ["W_Q", "W_K", "W_V", "W_O", "W_in", "W_gate", "W_out"] as const;

/**
 * Each backend keeps the only copy of each matrix (onnxruntime its own, fused q|k|v and gate|up); the
 * views read them back. Expected: the converted and processed weights before any backend saw them.
 */
function assertSameMatrices(dir: string, backend: "onnx" | "reference"): void {
  const ckpt = loadCheckpoint(dir);
  const expectedWeights = convertWeights(mapSource(ckpt.tensors, dir), ckpt.config);
  processWeights(expectedWeights, ckpt.config, resolveProcessing(undefined));
  const viaOnnx = HookedTransformer.fromCheckpoint(loadCheckpoint(dir), { backend });
  const viaReference = { weights: expectedWeights, dispose() {} };
  try {
    viaOnnx.weights.blocks.forEach((block, l) => {
      const expected = viaReference.weights.blocks[l];
      for (const name of MATRICES) {
        const got = block[name];
        const want = expected[name];
        if (want === null || got === null) {
          assert.equal(got, want, `${name} of block ${l}`);
          continue;
        }
        assert.deepEqual(got.shape, want.shape, `${name} of block ${l}: shape`);
        assert.deepEqual(got.data, want.data, `${name} of block ${l}: read back bit for bit`);
      }
    });
    assert.deepEqual(viaOnnx.weights.W_U.data, viaReference.weights.W_U.data, "W_U read back bit for bit");
    assert.throws(() => {
      (viaOnnx.weights.blocks[0] as { W_O: unknown }).W_O = null;
    }, /held by the kernel backend.*before building/);
    // Reading a view does not disturb the model: logits are unchanged.
    const before = viaOnnx.run("Once upon a time").data;
    void viaOnnx.weights.blocks[0].W_O.data[0];
    assert.deepEqual(viaOnnx.run("Once upon a time").data, before);
  } finally {
    viaOnnx.dispose();
    viaReference.dispose();
  }
}

test("GPT-2: every matrix read back from either backend equals the converted weight exactly", () => {
  assertSameMatrices(FIXTURE_DIR, "onnx");
  assertSameMatrices(FIXTURE_DIR, "reference");
});

test("Llama family (GQA, gated MLP, untied): matrices read back exactly", () => {
  for (const i of [0, 1]) {
    const { dir } = makeVariantCheckpoint(root, i);
    cpSync(
      join(FIXTURE_DIR, "..", "..", "..", "models", "stories260k", "tokenizer.json"),
      join(dir, "tokenizer.json"),
    );
    cpSync(
      join(FIXTURE_DIR, "..", "..", "..", "models", "stories260k", "tokenizer_config.json"),
      join(dir, "tokenizer_config.json"),
    );
    assertSameMatrices(dir, "onnx");
    assertSameMatrices(dir, "reference");
  }
  assert.ok(LLAMA_VARIANTS.length >= 2);
});

test("a model too large for the memory limit is refused with the figures, before any weight is read", async () => {
  let reads = 0;
  const readFloat32 = SafetensorsReader.prototype.readFloat32;
  SafetensorsReader.prototype.readFloat32 = function (this: SafetensorsReader, name: string) {
    reads++;
    return readFloat32.call(this, name);
  };
  after(() => {
    SafetensorsReader.prototype.readFloat32 = readFloat32;
  });
  await assert.rejects(
    HookedTransformer.fromPretrained(FIXTURE_DIR, { memoryLimit: parseByteSize("64M") }),
    (err: Error) => {
      assert.ok(err instanceof MemoryBudgetError, err.message);
      // GPT-2's parameter count from its config, independently of the loader.
      const {
        n_layer: L,
        n_embd: D,
        vocab_size: V,
        n_positions: P,
      } = JSON.parse(readFileSync(join(FIXTURE_DIR, "config.json"), "utf8"));
      const block = 2 * D + D * 3 * D + 3 * D + D * D + D + 2 * D + D * 4 * D + 4 * D + 4 * D * D + D;
      const mb = Math.round(((V * D + P * D + L * block + 2 * D) * 4) / 1024 ** 2);
      const m = err.message.match(
        /needs about (\d+) MB to load the model \((\d+(?:\.\d+)?) × its (\d+) MB of float32 weights\)/,
      );
      assert.ok(m, err.message);
      assert.equal(Number(m[3]), mb, "the weights' size from the config");
      assert.ok(Math.abs(Number(m[1]) - Number(m[2]) * mb) <= Number(m[2]) + 1, "ratio × weights");
      assert.match(err.message, /the limit of 64 MB leaves \d+ MB/);
      assert.match(err.message, /--memory-limit/);
      return true;
    },
  );
  assert.equal(reads, 0, "no tensor was read");
  const model = await HookedTransformer.fromPretrained(FIXTURE_DIR, { memoryLimit: parseByteSize("8G") });
  assert.ok(reads > 0, "with room, the same load reads the tensors");
  model.dispose();
});

test("parseByteSize reads the sizes people write and refuses the rest", () => {
  assert.equal(parseByteSize("512M"), 512 * 1024 ** 2);
  assert.equal(parseByteSize("1.5G"), 1.5 * 1024 ** 3);
  assert.equal(parseByteSize("8GiB"), 8 * 1024 ** 3);
  assert.equal(parseByteSize("2000"), 2000);
  assert.throws(() => parseByteSize("lots"), /--memory-limit "lots" is not a size/);
  assert.throws(() => parseByteSize("0"), /more than 0/);
});

test("CLI: a study whose model does not fit --memory-limit fails early with the figures and writes nothing", async () => {
  const out = join(root, "study-out");
  const r = await runCli([
    "study",
    "contractions",
    "--model",
    FIXTURE_DIR,
    "--quick",
    "--memory-limit",
    "50M",
    "--out",
    out,
  ]);
  assert.equal(r.code, 1, r.stderr);
  assert.match(
    r.stderr,
    /^circuitscope: error: not enough memory: this needs about \d+ MB to load the model/,
  );
  assert.match(r.stderr, /the limit of 50 MB/);
  assert.doesNotMatch(r.stderr, /\n\s+at /, "no stack trace");
  assert.equal(existsSync(out), false, "no output directory was created");
  const bad = await runCli(["predict", "--model", FIXTURE_DIR, "--memory-limit", "lots", "Hello"]);
  assert.equal(bad.code, 1);
  assert.match(bad.stderr, /--memory-limit "lots" is not a size: write e\.g\. 8G/);
});

test("patching sweeps size their batches from the memory they have; the result does not depend on it", async () => {
  const model = HookedTransformer.fromCheckpoint(loadCheckpoint(FIXTURE_DIR), { backend: "reference" });
  const { dModel: D, dMlp, nHeads: H } = model.cfg;
  const perRow = 4 * (16 * D + 4 * dMlp + 2 * H * 8);
  assert.equal(rowBudgetFor(model, 8, 64 * 1024 ** 3), 4096, "plenty of memory: the usual 4096 positions");
  assert.equal(rowBudgetFor(model, 8, 40 * perRow), 10, "a quarter of the memory, in whole positions");
  assert.equal(rowBudgetFor(model, 8, 0), 1, "never below one position");
  const sweep = (rowBudget?: number) =>
    activationPatching(model, {
      clean: ["We're helping our friend while they"],
      corrupted: ["We are helping our friend while they"],
      answers: { answer: model.toSingleToken("'re"), wrong: model.toSingleToken(" are") },
      target: { kind: "resid_pre" },
      rowBudget,
    });
  const roomy = await sweep();
  const tight = await sweep(rowBudgetFor(model, 8, 3 * perRow * 4));
  assert.ok(Math.max(...roomy.values.map((v, i) => Math.abs(v - tight.values[i]))) < 1e-5);
  model.dispose();
});
