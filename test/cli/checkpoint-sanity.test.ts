/** Damaged checkpoints are refused at load with the tensor or the config field named, never run into NaN. */
import assert from "node:assert/strict";
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { loadCheckpoint } from "../../src/weights/checkpoint.ts";
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
