/**
 * circuit-tracer transcoder sets: written and read back exactly, per-layer files through the hub (hf://), a
 * clear error for each malformed input, and the encoder against a float64 computation.
 */
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { parse, stringify } from "yaml";
import {
  encodeTranscoder,
  loadTranscoderSet,
  type TranscoderSet,
  writeTranscoderSet,
} from "../../src/graphs/transcoder-set.ts";
import { mulberry32 } from "../../src/util/random.ts";
import { writeSafetensors } from "../../src/weights/safetensors.ts";
import { randomTranscoder } from "../helpers/random-transcoder.ts";
import { startFakeHub } from "../hub/fake-hub.ts";

const root = mkdtempSync(join(tmpdir(), "cs-transcoders-"));
after(() => rmSync(root, { recursive: true, force: true }));
let count = 0;
const fresh = () => join(root, `d${count++}`);

const set: TranscoderSet = {
  featureInputHook: "ln2.hook_normalized",
  featureOutputHook: "hook_mlp_out",
  modelName: "karpathy/stories260k",
  ids: ["stories260k/tc-0", "stories260k/tc-1"],
  transcoders: [randomTranscoder(1, 0, 6, 10, true, false), randomTranscoder(2, 1, 6, 10, false, true)],
};

test("a written set reads back equal, in circuit-tracer's layout and config", async () => {
  const dir = fresh();
  await writeTranscoderSet(dir, set);
  const config = parse(readFileSync(join(dir, "config.yaml"), "utf8"));
  assert.deepEqual(config, {
    model_kind: "transcoder_set",
    model_name: "karpathy/stories260k",
    feature_input_hook: "ln2.hook_normalized",
    feature_output_hook: "hook_mlp_out",
    transcoders: [
      { id: "tc-0", layer: 0, filepath: "layer_0.safetensors" },
      { id: "tc-1", layer: 1, filepath: "layer_1.safetensors" },
    ],
  });
  const back = await loadTranscoderSet(dir);
  assert.deepEqual(back, set);
  // the config file itself works as the argument too
  assert.deepEqual(await loadTranscoderSet(join(dir, "config.yaml")), set);
});

test("a list of plain paths is one transcoder per layer in order; hf:// files come through the hub and its cache", async () => {
  const src = fresh();
  await writeTranscoderSet(src, set);
  const files = {
    "tc/layer_0.safetensors": readFileSync(join(src, "layer_0.safetensors")),
    "tc/layer_1.safetensors": readFileSync(join(src, "layer_1.safetensors")),
  };
  const commit = "0123456789abcdef0123456789abcdef01234567";
  const hub = await startFakeHub({ repos: { "someone/transcoders": { commit, files } } });
  const dir = fresh();
  mkdirSync(dir);
  writeFileSync(
    join(dir, "config.yaml"),
    stringify({
      feature_input_hook: "ln2.hook_normalized",
      feature_output_hook: "hook_mlp_out",
      transcoders: [
        "hf://someone/transcoders/tc/layer_0.safetensors",
        "hf://someone/transcoders/tc/layer_1.safetensors?revision=main",
      ],
    }),
  );
  const cacheDir = fresh();
  try {
    const loaded = await loadTranscoderSet(dir, { cacheDir, endpoint: hub.endpoint });
    assert.deepEqual(loaded.transcoders, set.transcoders);
    assert.deepEqual(loaded.ids, ["layer_0", "layer_1"]);
    assert.ok(
      hub.requests.some((r) => r.url.includes("/someone/transcoders/resolve/main/tc/layer_1.safetensors")),
    );
  } finally {
    await hub.close();
  }
  // offline, from the cache alone
  const again = await loadTranscoderSet(dir, { cacheDir, endpoint: "http://127.0.0.1:9", offline: true });
  assert.deepEqual(again.transcoders, set.transcoders);
  await assert.rejects(
    loadTranscoderSet(dir, { cacheDir: fresh(), offline: true }),
    /"someone\/transcoders" is not in the Hugging Face cache .* offline mode is on/,
  );
});

test("every malformed set is refused with what is wrong and how to fix it", async () => {
  const good = fresh();
  await writeTranscoderSet(good, set);
  const withConfig = (text: string) => {
    const dir = fresh();
    mkdirSync(dir);
    writeFileSync(join(dir, "config.yaml"), text);
    return dir;
  };
  const base = {
    feature_input_hook: "ln2.hook_normalized",
    feature_output_hook: "hook_mlp_out",
    transcoders: [join(good, "layer_0.safetensors"), join(good, "layer_1.safetensors")],
  };
  const cases: [string, RegExp][] = [
    [fresh(), /does not exist — --transcoders takes a directory holding config.yaml/],
    [withConfig("a: [1, 2"), /is not valid YAML/],
    [withConfig("- 1\n- 2\n"), /must be a YAML mapping/],
    [
      withConfig(stringify({ ...base, model_kind: "sae" })),
      /supported are "transcoder_set" .* and "cross_layer_transcoder"/,
    ],
    [withConfig(stringify({ ...base, feature_input_hook: undefined })), /needs feature_input_hook/],
    [withConfig(stringify({ ...base, transcoders: [] })), /must be a non-empty list/],
    [
      withConfig(stringify({ ...base, transcoders: [{ layer: 0 }] })),
      /transcoders\[0\] must be a path or \{layer/,
    ],
    [
      withConfig(stringify({ ...base, transcoders: [{ layer: 1, filepath: base.transcoders[1] }] })),
      /layer 0 is missing/,
    ],
    [
      withConfig(
        stringify({
          ...base,
          transcoders: [0, 0, 1].map((l) => ({ layer: l, filepath: base.transcoders[l] })),
        }),
      ),
      /layer 1 appears twice/,
    ],
    [
      withConfig(stringify({ ...base, transcoders: ["nope.safetensors"] })),
      /nope.safetensors does not exist/,
    ],
    [
      withConfig(stringify({ ...base, transcoders: ["hf://justone/file"] })),
      /is not an hf:\/\/owner\/repo\/path/,
    ],
  ];
  // tensors missing or of the wrong shape
  const broken = (tensors: Record<string, { shape: number[]; data: Float32Array }>) => {
    const dir = fresh();
    mkdirSync(dir);
    writeSafetensors(join(dir, "layer_0.safetensors"), tensors, "F32");
    writeFileSync(join(dir, "config.yaml"), stringify({ ...base, transcoders: ["layer_0.safetensors"] }));
    return dir;
  };
  const z = (n: number) => new Float32Array(n);
  const ok = {
    W_enc: { shape: [4, 3], data: z(12) },
    W_dec: { shape: [4, 3], data: z(12) },
    b_enc: { shape: [4], data: z(4) },
    b_dec: { shape: [3], data: z(3) },
  };
  cases.push(
    [
      broken({ ...ok, W_enc: { shape: [12], data: z(12) } }),
      /needs a 2-D tensor W_enc \[d_transcoder, d_model\]/,
    ],
    [broken({ W_enc: ok.W_enc, b_enc: ok.b_enc, b_dec: ok.b_dec }), /no tensor "W_dec"/],
    [broken({ ...ok, W_dec: { shape: [3, 4], data: z(12) } }), /W_dec has shape \[3,4\], expected \[4,3\]/],
    [broken({ ...ok, b_dec: { shape: [4], data: z(4) } }), /b_dec has shape \[4\], expected \[3\]/],
    [
      broken({ ...ok, "activation_function.threshold": { shape: [2], data: z(2) } }),
      /threshold has 2 values, expected 1 or d_transcoder = 4/,
    ],
    [broken({ ...ok, W_skip: { shape: [3, 4], data: z(12) } }), /W_skip has shape \[3,4\], expected \[3,3\]/],
  );
  const mixed = fresh();
  mkdirSync(mixed);
  writeSafetensors(join(mixed, "a.safetensors"), ok, "F32");
  writeFileSync(
    join(mixed, "config.yaml"),
    stringify({ ...base, transcoders: [join(good, "layer_0.safetensors"), "a.safetensors"] }),
  );
  cases.push([mixed, /layer 1 has d_model 3 but layer 0 has 6/]);
  for (const [dir, message] of cases) await assert.rejects(loadTranscoderSet(dir), message, dir);
});

test("encodeTranscoder: JumpReLU keeps a pre-activation above its threshold, ReLU above 0 (float64 reference)", () => {
  for (const tc of set.transcoders) {
    const rng = mulberry32(7 + tc.layer);
    const input = Float32Array.from({ length: tc.dModel }, () => rng() * 4 - 2);
    const acts = encodeTranscoder(tc, input);
    let active = 0;
    for (let f = 0; f < tc.dTranscoder; f++) {
      let pre = tc.bEnc[f];
      for (let d = 0; d < tc.dModel; d++) pre += tc.wEnc[f * tc.dModel + d] * input[d];
      const cut = tc.threshold ? tc.threshold[f] : 0;
      const want = pre > cut ? pre : 0;
      assert.ok(Math.abs(acts[f] - want) < 1e-5, `layer ${tc.layer} feature ${f}: ${acts[f]} vs ${want}`);
      if (want > 0) active++;
    }
    assert.ok(active > 0 && active < tc.dTranscoder, "some features on, some off");
  }
});
