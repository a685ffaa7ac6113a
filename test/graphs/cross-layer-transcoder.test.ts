/**
 * circuit-tracer cross-layer transcoders: written in its file layout (names, keys, shapes) and read back
 * exactly, from a local directory and through the hub (repo_id, subfolder), a clear error for each malformed
 * directory, and the decoder of every layer against a float64 computation.
 */
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { parse, stringify } from "yaml";
import { reconstructMlpOut, reconstructMlpOuts } from "../../src/graphs/replacement-run.ts";
import {
  loadTranscoderSet,
  type TranscoderSet,
  writeTranscoderSet,
} from "../../src/graphs/transcoder-set.ts";
import { mulberry32 } from "../../src/util/random.ts";
import { SafetensorsReader, writeSafetensors } from "../../src/weights/safetensors.ts";
import { randomCrossLayerTranscoder, randomTranscoderSet } from "../helpers/random-transcoder.ts";
import { startFakeHub } from "../hub/fake-hub.ts";

const root = mkdtempSync(join(tmpdir(), "cs-clt-"));
after(() => rmSync(root, { recursive: true, force: true }));
let count = 0;
const fresh = () => join(root, `d${count++}`);

const L = 3;
const D = 5;
const F = 7;
const clt: TranscoderSet = {
  ...randomCrossLayerTranscoder({ layers: L, dModel: D, dTc: F, seed: 3, jump: true }),
  featureInputHook: "hook_resid_mid",
  modelName: "karpathy/stories260k",
  ids: ["stories260k/clt_layer_0", "stories260k/clt_layer_1", "stories260k/clt_layer_2"],
};

function headers(path: string): Record<string, number[]> {
  const reader = SafetensorsReader.open(path);
  try {
    return Object.fromEntries([...reader.tensors].map(([name, info]) => [name, info.shape]));
  } finally {
    reader.close();
  }
}

test("a written CLT has circuit-tracer's files, keys and shapes, and reads back equal", async () => {
  const dir = fresh();
  await writeTranscoderSet(dir, clt);
  assert.deepEqual(parse(readFileSync(join(dir, "config.yaml"), "utf8")), {
    model_kind: "cross_layer_transcoder",
    model_name: "karpathy/stories260k",
    feature_input_hook: "hook_resid_mid",
    feature_output_hook: "hook_mlp_out",
  });
  for (let i = 0; i < L; i++) {
    assert.deepEqual(headers(join(dir, `W_enc_${i}.safetensors`)), {
      [`W_enc_${i}`]: [F, D],
      [`b_enc_${i}`]: [F],
      [`b_dec_${i}`]: [D],
      [`threshold_${i}`]: [F],
    });
    assert.deepEqual(headers(join(dir, `W_dec_${i}.safetensors`)), { [`W_dec_${i}`]: [F, L - i, D] });
  }
  assert.deepEqual(
    readdirSync(dir)
      .filter((f) => f.endsWith(".safetensors"))
      .sort(),
    ["W_dec_0", "W_dec_1", "W_dec_2", "W_enc_0", "W_enc_1", "W_enc_2"].map((f) => `${f}.safetensors`),
  );
  const back = await loadTranscoderSet(dir);
  assert.deepEqual(back, clt);
  // ReLU (no thresholds) round-trips too
  const relu = { ...clt, transcoders: clt.transcoders.map((tc) => ({ ...tc, threshold: null })) };
  const reluDir = fresh();
  await writeTranscoderSet(reluDir, relu);
  assert.deepEqual(await loadTranscoderSet(join(reluDir, "config.yaml")), relu);
});

test("BF16 files (as circuit-tracer saves them) load as their float32 values", async () => {
  const dir = fresh();
  await writeTranscoderSet(dir, clt);
  for (let i = 0; i < L; i++) {
    const tc = clt.transcoders[i];
    writeSafetensors(
      join(dir, `W_dec_${i}.safetensors`),
      { [`W_dec_${i}`]: { shape: [F, L - i, D], data: tc.wDec } },
      "BF16",
    );
  }
  const back = await loadTranscoderSet(dir);
  back.transcoders.forEach((tc, i) => {
    tc.wDec.forEach((v, k) => {
      const want = clt.transcoders[i].wDec[k];
      assert.ok(Math.abs(v - want) <= Math.abs(want) / 128, `layer ${i} W_dec[${k}] ${v} vs ${want}`);
    });
  });
});

test("repo_id (and subfolder) fetch the files through the hub; then offline from its cache", async () => {
  const src = fresh();
  await writeTranscoderSet(src, clt);
  const files: Record<string, Buffer> = {};
  for (const f of readdirSync(src))
    if (f.endsWith(".safetensors")) files[`clt/${f}`] = readFileSync(join(src, f));
  const commit = "0123456789abcdef0123456789abcdef01234567";
  const hub = await startFakeHub({ repos: { "someone/clt": { commit, files } } });
  const dir = fresh();
  mkdirSync(dir);
  writeFileSync(
    join(dir, "config.yaml"),
    stringify({
      model_kind: "cross_layer_transcoder",
      model_name: "karpathy/stories260k",
      feature_input_hook: "hook_resid_mid",
      feature_output_hook: "hook_mlp_out",
      repo_id: "someone/clt",
      subfolder: "clt",
      revision: "main",
    }),
  );
  const cacheDir = fresh();
  try {
    const loaded = await loadTranscoderSet(dir, { cacheDir, endpoint: hub.endpoint });
    assert.deepEqual(loaded, clt);
    assert.ok(
      hub.requests.some((r) => /\/someone\/clt\/resolve\/[^/]+\/clt\/W_dec_2\.safetensors$/.test(r.url)),
    );
  } finally {
    await hub.close();
  }
  const again = await loadTranscoderSet(dir, { cacheDir, endpoint: "http://127.0.0.1:9", offline: true });
  assert.deepEqual(again, clt);
  await assert.rejects(
    loadTranscoderSet(dir, { cacheDir: fresh(), offline: true }),
    /"someone\/clt" is not in the Hugging Face cache .* offline mode is on/,
  );
});

test("every malformed CLT directory is refused with what is wrong and how to fix it", async () => {
  const cases: [string, RegExp][] = [];
  /** A good CLT directory, then `spoil` applied to it. */
  const spoilt = async (spoil: (dir: string) => void) => {
    const dir = fresh();
    await writeTranscoderSet(dir, clt);
    spoil(dir);
    return dir;
  };
  const enc = (i: number, over: Record<string, { shape: number[]; data: Float32Array }>) => (dir: string) => {
    const tc = clt.transcoders[i];
    writeSafetensors(
      join(dir, `W_enc_${i}.safetensors`),
      {
        [`W_enc_${i}`]: { shape: [F, D], data: tc.wEnc },
        [`b_enc_${i}`]: { shape: [F], data: tc.bEnc },
        [`b_dec_${i}`]: { shape: [D], data: tc.bDec },
        [`threshold_${i}`]: { shape: [F], data: tc.threshold! },
        ...over,
      },
      "F32",
    );
  };
  cases.push([
    await spoilt((dir) => rmSync(join(dir, "W_dec_0.safetensors"))),
    /no W_dec_0\.safetensors in .*: a cross-layer transcoder's files W_enc_\{i\}\.safetensors and W_dec_\{i\}\.safetensors sit beside its config\.yaml/,
  ]);
  cases.push([
    await spoilt((dir) => rmSync(join(dir, "W_enc_1.safetensors"))),
    /layer 1 is missing: no W_enc_1\.safetensors .* \(W_dec_0 writes to 3 layers/,
  ]);
  cases.push([
    await spoilt((dir) => rmSync(join(dir, "W_dec_2.safetensors"))),
    /layer 2 is missing: no W_dec_2\.safetensors/,
  ]);
  cases.push([
    await spoilt((dir) =>
      writeSafetensors(
        join(dir, "W_enc_3.safetensors"),
        { W_enc_3: { shape: [F, D], data: clt.transcoders[0].wEnc } },
        "F32",
      ),
    ),
    /holds W_enc_3\.safetensors, but W_dec_0 writes to 3 layers \(0\.\.2\): the files are from different/,
  ]);
  // W_enc saved in SAELens' orientation [d_model, d_tc]
  cases.push([
    await spoilt(enc(1, { W_enc_1: { shape: [D, F], data: clt.transcoders[1].wEnc } })),
    /W_enc_1 has shape \[5,7\], expected \[7,5\] \(the encoder, one row per feature\)/,
  ]);
  cases.push([
    await spoilt((dir) =>
      writeSafetensors(
        join(dir, "W_dec_1.safetensors"),
        { W_dec_1: { shape: [F, L, D], data: new Float32Array(F * L * D) } },
        "F32",
      ),
    ),
    /W_dec_1 has shape \[7,3,5\], expected \[7,2,5\] \(the decoder of layer 1's features into layers 1\.\.2\)/,
  ]);
  cases.push([
    await spoilt((dir) =>
      writeSafetensors(
        join(dir, "W_dec_0.safetensors"),
        { W_dec_0: { shape: [F, D], data: new Float32Array(F * D) } },
        "F32",
      ),
    ),
    /needs a 3-D tensor W_dec_0 \[d_transcoder, n_layers, d_model\]/,
  ]);
  const nan = Float32Array.from(clt.transcoders[2].bEnc);
  nan[4] = Number.NaN;
  cases.push([
    await spoilt(enc(2, { b_enc_2: { shape: [F], data: nan } })),
    /b_enc_2 \(the encoder bias\) holds NaN at flat index 4 .* re-export/,
  ]);
  cases.push([
    await spoilt((dir) => {
      const tc = clt.transcoders[1];
      writeSafetensors(
        join(dir, "W_enc_1.safetensors"),
        {
          W_enc_1: { shape: [F, D], data: tc.wEnc },
          b_enc_1: { shape: [F], data: tc.bEnc },
          b_dec_1: { shape: [D], data: tc.bDec },
        },
        "F32",
      );
    }),
    /W_enc_1\.safetensors lacks threshold_1 but layer 0 has threshold_0: JumpReLU thresholds are on every layer or on none/,
  ]);
  cases.push([
    await spoilt(enc(0, { b_dec_0: { shape: [D + 1], data: new Float32Array(D + 1) } })),
    /b_dec_0 has shape \[6\], expected \[5\]/,
  ]);
  cases.push([
    await spoilt((dir) => rmSync(join(dir, "config.yaml"))),
    /config\.yaml does not exist .* this directory holds cross-layer transcoder files: add a config\.yaml with model_kind: cross_layer_transcoder, feature_input_hook and feature_output_hook/,
  ]);
  for (const [dir, message] of cases) await assert.rejects(loadTranscoderSet(dir), message, dir);
});

test("the decoder: layer l' sums every layer l ≤ l' features' writes W_dec_l[f, l' − l] on b_dec[l'] (float64)", () => {
  const rng = mulberry32(11);
  const acts = clt.transcoders.map(() =>
    Float32Array.from({ length: F }, () => (rng() < 0.5 ? 0 : rng() * 3)),
  );
  const inputs = clt.transcoders.map(() => new Float32Array(D));
  const got = reconstructMlpOuts(clt, acts, inputs);
  for (let into = 0; into < L; into++) {
    for (let d = 0; d < D; d++) {
      let want = clt.transcoders[into].bDec[d];
      for (let from = 0; from <= into; from++) {
        const w = clt.transcoders[from].wDec; // [F, L − from, D]
        for (let f = 0; f < F; f++) want += acts[from][f] * w[(f * (L - from) + (into - from)) * D + d];
      }
      assert.ok(Math.abs(got[into][d] - want) < 1e-5, `layer ${into}[${d}]: ${got[into][d]} vs ${want}`);
    }
  }
  // A per-layer set decodes each layer from its own transcoder alone (skip included).
  const perLayer = randomTranscoderSet({
    layers: L,
    dModel: D,
    dTc: F,
    seed: 5,
    jump: () => false,
    skip: () => true,
  });
  const xs = perLayer.transcoders.map(() => Float32Array.from({ length: D }, () => rng() - 0.5));
  reconstructMlpOuts(perLayer, acts, xs).forEach((out, l) => {
    assert.deepEqual(out, reconstructMlpOut(perLayer.transcoders[l], acts[l], xs[l]));
  });
});
