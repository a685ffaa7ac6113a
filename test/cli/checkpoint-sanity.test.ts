/** Damaged checkpoints are refused at load with the tensor or the config field named, never run into NaN. */
import assert from "node:assert/strict";
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { loadCheckpoint } from "../../src/weights/checkpoint.ts";
import { MODEL_TYPES } from "../../src/weights/config.ts";
import { SafetensorsReader, writeSafetensors } from "../../src/weights/safetensors.ts";
import { runCli } from "../helpers/cli.ts";
import { FIXTURE_DIR } from "../helpers/fixture.ts";

const root = mkdtempSync(join(tmpdir(), "cs-checkpoint-sanity-"));
after(() => rmSync(root, { recursive: true, force: true }));

/** The fixture's tensors, with `edit` applied, written as a new checkpoint directory beside a config. */
function variant(
  name: string,
  edit: (tensors: Record<string, { shape: number[]; data: Float32Array }>) => void,
  config?: object,
): string {
  const dir = join(root, name);
  mkdirSync(dir, { recursive: true });
  const reader = SafetensorsReader.open(join(FIXTURE_DIR, "model.safetensors"));
  const tensors: Record<string, { shape: number[]; data: Float32Array }> = {};
  for (const [n, info] of reader.tensors) tensors[n] = { shape: info.shape, data: reader.readFloat32(n) };
  reader.close();
  edit(tensors);
  writeSafetensors(join(dir, "model.safetensors"), tensors, "F32");
  if (config) writeFileSync(join(dir, "config.json"), JSON.stringify(config));
  else copyFileSync(join(FIXTURE_DIR, "config.json"), join(dir, "config.json"));
  return dir;
}

const fixtureConfig = JSON.parse(readFileSync(join(FIXTURE_DIR, "config.json"), "utf8"));
const nameOf = (tensors: Record<string, unknown>, re: RegExp) =>
  Object.keys(tensors).find((n) => re.test(n))!;

for (const bad of [Number.NaN, Number.POSITIVE_INFINITY]) {
  test(`a ${bad} weight is found at load and named, with a non-zero exit`, async () => {
    let tensorName = "";
    const dir = variant(`nonfinite-${bad}`, (t) => {
      tensorName = nameOf(t, /h\.1\.mlp\.c_fc\.weight$/);
      t[tensorName].data[37] = bad;
    });
    assert.throws(
      () => loadCheckpoint(dir),
      new RegExp(`tensor "${tensorName.replace(/\./g, "\\.")}" .*holds ${bad} at flat index 37`),
    );
    const res = await runCli(["predict", "--model", dir, "hello"]);
    assert.notEqual(res.code, 0);
    assert.match(res.stderr, /^circuitscope: error: Checkpoint .* tensor ".*h\.1\.mlp\.c_fc\.weight"/m);
    assert.doesNotMatch(res.stderr, /\n\s+at /);
    assert.doesNotMatch(res.stdout, /null|NaN/);
  });
}

test("a config with fewer layers than the checkpoint is an error naming both", async () => {
  const dir = variant("two-layer-config", () => {}, { ...fixtureConfig, n_layer: 2 });
  const res = await runCli(["predict", "--model", dir, "hello"]);
  assert.notEqual(res.code, 0);
  assert.match(
    res.stderr,
    /^circuitscope: error: .*config\.json says 2 layers, but the weights hold 3 \(e\.g\. ".*h\.2\./m,
  );
  // The matching config still loads (the check is not simply "refuse everything").
  assert.equal(loadCheckpoint(variant("same", () => {})).config.nLayers, 3);
});

test("a config whose sizes disagree with the tensor shapes names the tensor and both shapes", () => {
  const dir = variant("wide-config", () => {}, { ...fixtureConfig, n_embd: 128 });
  assert.throws(
    () => loadCheckpoint(dir),
    /tensor ".*" in model\.safetensors has shape \[.*64.*\], but config\.json implies \[.*128.*\]/,
  );
});

test("a config claiming 1e9 layers is refused from the weights' own layer count, before anything is allocated", async () => {
  const dir = variant("billion-layers", () => {}, { ...fixtureConfig, n_layer: 1e9 });
  assert.throws(
    () => loadCheckpoint(dir),
    /config\.json says 1000000000 layers, but the weights hold 3 \(e\.g\. ".*h\.2\..*"\) — .*fix the layer count in config\.json/,
  );
  // Fewer layers claimed than stored, and more: both directions are caught.
  assert.throws(
    () => loadCheckpoint(variant("four-layers", () => {}, { ...fixtureConfig, n_layer: 4 })),
    /says 4 layers, but the weights hold 3/,
  );
});

test("a config without model_type that is not an old GPT-2 one names the missing field and the choices", () => {
  const { model_type: _drop, n_layer, ...rest } = fixtureConfig;
  const dir = variant("no-model-type", () => {}, { ...rest, num_hidden_layers: n_layer });
  assert.throws(
    () => loadCheckpoint(dir),
    // Every family circuitscope reads is offered (the list grows with the families).
    new RegExp(
      `field "model_type" is missing, .*add "model_type" to config\\.json: one of ${MODEL_TYPES.join(", ")} \\(num_hidden_layers suggests "llama"`,
    ),
  );
  // An old GPT-2 config (n_layer, no model_type) still loads as GPT-2.
  const { model_type: _m, ...oldGpt2 } = fixtureConfig;
  assert.equal(loadCheckpoint(variant("old-gpt2", () => {}, oldGpt2)).config.modelType, "gpt2");
});

test("finite weights of 3e38 that overflow the forward pass are an error, not NaN logits with exit 0", async () => {
  const dir = variant("huge-weights", (t) => {
    t[nameOf(t, /h\.1\.mlp\.c_fc\.weight$/)].data.fill(3e38);
  });
  const res = await runCli(["predict", "--model", dir, "hello"]);
  assert.notEqual(res.code, 0, res.stdout);
  assert.match(
    res.stderr,
    /^circuitscope: error: The model's logits are not finite \(NaN at batch 0, position \d+, token \d+\): the forward pass overflowed float32.*re-download or re-export the model/m,
  );
  assert.doesNotMatch(res.stdout, /NaN/);
});

test("an unembedding that overflows on a finite residual is caught too (the logit bound does not skip it)", async () => {
  // wte is also W_U (tied): the residual stays finite (the final norm brings it back to about 1) while
  // each logit sums d_model products of ±3e37 (signs mixed, so centring the unembedding keeps them).
  const dir = variant("huge-unembed", (t) => {
    const w = t[nameOf(t, /wte\.weight$/)].data;
    for (let i = 0; i < w.length; i++) w[i] = (Math.imul(i, 2654435761) >>> 7) & 1 ? 3e37 : -3e37;
  });
  const res = await runCli(["predict", "--model", dir, "hello"]);
  assert.notEqual(res.code, 0, res.stdout);
  assert.match(res.stderr, /The model's logits are not finite \((NaN|-?Infinity) at batch 0/);
});
