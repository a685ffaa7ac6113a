import assert from "node:assert/strict";
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { loadCheckpoint, makeRandomCheckpoint } from "../../src/weights/checkpoint.ts";
import type { ModelConfig } from "../../src/weights/config.ts";
import { gpt2Config } from "../../src/weights/families/gpt2.ts";
import { writeSafetensors } from "../../src/weights/safetensors.ts";
import { FIXTURE_DIR } from "../helpers/fixture.ts";

const root = mkdtempSync(join(tmpdir(), "cs-checkpoint-"));
after(() => rmSync(root, { recursive: true, force: true }));

const small: ModelConfig = gpt2Config({
  nLayers: 2,
  nHeads: 2,
  dModel: 8,
  dHead: 4,
  dMlp: 32,
  nCtx: 6,
  dVocab: 11,
  lnEps: 1e-5,
  act: "gelu_new",
});
const TENSORS_PER_LAYER = 12;
const expectedCount = (layers: number) => 4 + TENSORS_PER_LAYER * layers; // wte, wpe, ln_f.{w,b}

/** Reads one float32 from a safetensors file by its own byte arithmetic (not via our reader). */
function rawF32(path: string, name: string, index: number): number {
  const bytes = readFileSync(path);
  const n = Number(bytes.readBigUInt64LE(0));
  const header = JSON.parse(bytes.subarray(8, 8 + n).toString("utf8"));
  return bytes.readFloatLE(8 + n + header[name].data_offsets[0] + 4 * index);
}

test("loads the tiny-gpt2 fixture: config values, shapes, data, buffers dropped", () => {
  const ckpt = loadCheckpoint(FIXTURE_DIR);
  assert.deepEqual(
    ckpt.config,
    gpt2Config({
      nLayers: 3,
      nHeads: 4,
      dModel: 64,
      dHead: 16,
      dMlp: 256,
      nCtx: 64,
      dVocab: 50257,
      lnEps: 1e-5,
      act: "gelu_new",
    }),
  );
  assert.equal(ckpt.dir, FIXTURE_DIR);
  assert.equal(ckpt.tensors.size, expectedCount(3));
  assert.equal(ckpt.tensors.has("h.0.attn.bias"), false);
  assert.deepEqual(ckpt.tensors.get("wte.weight")!.shape, [50257, 64]);
  assert.deepEqual(ckpt.tensors.get("wpe.weight")!.shape, [64, 64]);
  assert.deepEqual(ckpt.tensors.get("h.2.attn.c_attn.weight")!.shape, [64, 192]);
  assert.deepEqual(ckpt.tensors.get("h.1.mlp.c_proj.weight")!.shape, [256, 64]);
  assert.deepEqual(ckpt.tensors.get("ln_f.bias")!.shape, [64]);
  const file = join(FIXTURE_DIR, "model.safetensors");
  const wte = ckpt.tensors.get("wte.weight")!.data;
  assert.equal(wte.length, 50257 * 64);
  for (const i of [0, 1, 12345, wte.length - 1]) assert.equal(wte[i], rawF32(file, "wte.weight", i));
  assert.equal(ckpt.tensors.get("h.2.mlp.c_fc.bias")!.data[7], rawF32(file, "h.2.mlp.c_fc.bias", 7));
});

test("a random F32 checkpoint loads back exactly what was written", () => {
  const dir = join(root, "plain");
  const written = makeRandomCheckpoint(dir, small, { seed: 3 });
  const ckpt = loadCheckpoint(dir);
  assert.deepEqual(ckpt.config, gpt2Config(small));
  assert.equal(ckpt.tensors.size, expectedCount(2));
  for (const [name, tensor] of written) assert.deepEqual(ckpt.tensors.get(name), tensor, name);
  // LN gains near 1 and biases nonzero, so a model test can see each tensor used.
  const gain = ckpt.tensors.get("h.1.ln_2.weight")!.data;
  assert.ok(gain.every((g) => Math.abs(g - 1) < 0.6));
  assert.ok(ckpt.tensors.get("h.0.attn.c_attn.bias")!.data.every((b) => b !== 0));
});

test("prefixed, buffered and sharded checkpoints load to the same tensors", () => {
  makeRandomCheckpoint(join(root, "p"), small, { seed: 9 });
  const plain = loadCheckpoint(join(root, "p"));
  const dir = join(root, "sharded");
  makeRandomCheckpoint(dir, small, { seed: 9, prefix: true, includeBuffers: true, shards: 3 });
  const files = readdirSync(dir).sort();
  assert.deepEqual(files, [
    "config.json",
    "model-00001-of-00003.safetensors",
    "model-00002-of-00003.safetensors",
    "model-00003-of-00003.safetensors",
    "model.safetensors.index.json",
  ]);
  const index = JSON.parse(readFileSync(join(dir, "model.safetensors.index.json"), "utf8"));
  assert.equal(index.weight_map["transformer.h.1.attn.bias"] !== undefined, true);
  assert.equal(index.weight_map["lm_head.weight"] !== undefined, true);
  const sharded = loadCheckpoint(dir);
  assert.deepEqual([...sharded.tensors.keys()].sort(), [...plain.tensors.keys()].sort());
  for (const [name, tensor] of plain.tensors) assert.deepEqual(sharded.tensors.get(name), tensor, name);
});

test("F16 and BF16 checkpoints load as float32 close to the originals", () => {
  for (const dtype of ["F16", "BF16"] as const) {
    const dir = join(root, dtype);
    const written = makeRandomCheckpoint(dir, small, { seed: 5, dtype });
    const ckpt = loadCheckpoint(dir);
    const tol = dtype === "F16" ? 2 ** -11 : 2 ** -8; // relative half-ulp of each format
    for (const [name, { data }] of written) {
      const back = ckpt.tensors.get(name)!.data;
      for (let i = 0; i < data.length; i++) {
        assert.ok(
          Math.abs(back[i] - data[i]) <= tol * Math.abs(data[i]) + 2 ** -24,
          `${dtype} ${name}[${i}]`,
        );
      }
    }
    // And not simply exact: rounding did happen.
    const w = written.get("wte.weight")!.data;
    assert.ok(ckpt.tensors.get("wte.weight")!.data.some((v, i) => v !== w[i]));
  }
});

test("a tensor whose shape does not match config.json is named with both shapes", () => {
  const dir = join(root, "misshapen");
  makeRandomCheckpoint(dir, small, { seed: 1 });
  const config = JSON.parse(readFileSync(join(dir, "config.json"), "utf8"));
  config.n_positions = 7;
  config.n_ctx = 7;
  writeFileSync(join(dir, "config.json"), JSON.stringify(config));
  assert.throws(
    () => loadCheckpoint(dir),
    /tensor "wpe.weight" in model.safetensors has shape \[6, 8\], but config.json implies \[7, 8\]/,
  );
});

test("a missing tensor is named, with its expected shape and the file", () => {
  const dir = join(root, "missing-tensor");
  const written = makeRandomCheckpoint(dir, small, { seed: 2 });
  written.delete("h.1.mlp.c_fc.bias");
  writeSafetensors(join(dir, "model.safetensors"), Object.fromEntries(written), "F32");
  assert.throws(
    () => loadCheckpoint(dir),
    /missing tensor "h.1.mlp.c_fc.bias" \(expected shape \[32\]\) in model.safetensors/,
  );
});

test("a shard named in the index but absent, or not holding its tensor, is reported", () => {
  const dir = join(root, "bad-shards");
  makeRandomCheckpoint(dir, small, { seed: 4, shards: 2 });
  const indexPath = join(dir, "model.safetensors.index.json");
  const index = JSON.parse(readFileSync(indexPath, "utf8"));
  index.weight_map["wte.weight"] = "model-00002-of-00002.safetensors"; // it is in shard 1
  writeFileSync(indexPath, JSON.stringify(index));
  assert.throws(
    () => loadCheckpoint(dir),
    /says "wte.weight" is in model-00002-of-00002.safetensors, but that file/,
  );
  rmSync(join(dir, "model-00002-of-00002.safetensors"));
  assert.throws(() => loadCheckpoint(dir), /Weights file not found: .*model-00002-of-00002.safetensors/);
});

test("missing directory, config, weights, and pytorch-only checkpoints give clear errors", () => {
  assert.throws(
    () => loadCheckpoint(join(root, "nowhere")),
    /Model directory not found: .*nowhere.*config.json/,
  );

  const noConfig = join(root, "no-config");
  mkdirSync(noConfig);
  assert.throws(() => loadCheckpoint(noConfig), /No config.json in model directory .*no-config/);

  const noWeights = join(root, "no-weights");
  makeRandomCheckpoint(noWeights, small);
  rmSync(join(noWeights, "model.safetensors"));
  assert.throws(
    () => loadCheckpoint(noWeights),
    /No weights in model directory .*expected model.safetensors/,
  );

  writeFileSync(join(noWeights, "pytorch_model.bin"), "not really");
  assert.throws(
    () => loadCheckpoint(noWeights),
    /has only pytorch_model.bin: PyTorch pickle checkpoints are not supported.*save_pretrained\(OUT, safe_serialization=True\)/,
  );

  const badJson = join(root, "bad-config-json");
  makeRandomCheckpoint(badJson, small);
  writeFileSync(join(badJson, "config.json"), "{ nope");
  assert.throws(() => loadCheckpoint(badJson), /Invalid model config .*config.json: not valid JSON/);
  assert.equal(existsSync(join(badJson, "model.safetensors")), true);
});
