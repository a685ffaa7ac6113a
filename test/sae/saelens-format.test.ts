/**
 * The SAELens format: every architecture and config version against float64 references written here
 * (not through the module), files both ways (names, keys, shapes, dtypes), and the refusals.
 */
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { checkSaeFitsModel } from "../../src/sae/hook-width.ts";
import { resolveSaeDir } from "../../src/sae/resolve-sae.ts";
import { Sae, type SaeWeights } from "../../src/sae/sae.ts";
import { parseSaeConfig, type SaeConfig } from "../../src/sae/sae-config.ts";
import { loadSaeLensDir, readSaeConfig, writeSaeLensDir } from "../../src/sae/saelens-dir.ts";
import { createOnnxKernels } from "../../src/tensor/onnx-kernels.ts";
import { referenceKernels } from "../../src/tensor/reference-kernels.ts";
import { mulberry32 } from "../../src/util/random.ts";
import { gpt2Config } from "../../src/weights/families/gpt2.ts";
import { SafetensorsReader, writeSafetensors } from "../../src/weights/safetensors.ts";
import { startFakeHub } from "../hub/fake-hub.ts";

const root = mkdtempSync(join(tmpdir(), "cs-sae-"));
after(() => rmSync(root, { recursive: true, force: true }));
let dirCount = 0;
const freshDir = () => join(root, `d${dirCount++}`);

const D_IN = 6;
const D_SAE = 10;
const ARCHS = ["standard", "topk", "jumprelu", "gated"] as const;

function randn(rng: () => number, n: number, scale = 1): Float32Array {
  return Float32Array.from({ length: n }, () => (rng() * 2 - 1) * scale);
}

function randomWeights(arch: (typeof ARCHS)[number], seed: number): SaeWeights {
  const rng = mulberry32(seed);
  const w: SaeWeights = {
    W_enc: randn(rng, D_IN * D_SAE),
    W_dec: randn(rng, D_SAE * D_IN),
    b_dec: randn(rng, D_IN, 0.5),
  };
  if (arch === "gated") {
    // A wide gate bias, so that the gate closes on features whose magnitude is positive (and opens on others).
    w.b_gate = randn(rng, D_SAE, 3);
    w.r_mag = randn(rng, D_SAE, 0.5);
    w.b_mag = randn(rng, D_SAE, 0.5);
  } else {
    w.b_enc = randn(rng, D_SAE, 0.5);
  }
  if (arch === "jumprelu") w.threshold = Float32Array.from({ length: D_SAE }, () => rng() * 0.8);
  return w;
}

function config(arch: (typeof ARCHS)[number], over: Partial<SaeConfig> = {}): SaeConfig {
  return {
    architecture: arch,
    dIn: D_IN,
    dSae: D_SAE,
    ...(arch === "topk" ? { k: 3 } : {}),
    dtype: "float32",
    applyBDecToInput: true,
    normalizeActivations: "none",
    reshapeActivations: "none",
    hookName: "blocks.1.hook_resid_pre",
    metadata: { model_name: "tiny", prepend_bos: true, context_size: 128 },
    ...over,
  };
}

/** The formulas in float64, element by element. */
function reference64(
  cfg: SaeConfig,
  w: SaeWeights,
  x: Float32Array,
  rows: number,
  s = 1,
): { pre: number[][]; post: number[][]; recons: number[][] } {
  const pre: number[][] = [];
  const post: number[][] = [];
  const recons: number[][] = [];
  for (let r = 0; r < rows; r++) {
    const xs = Array.from(
      { length: D_IN },
      (_, i) => x[r * D_IN + i] * s - (cfg.applyBDecToInput ? w.b_dec[i] : 0),
    );
    const dot = (j: number, scale = 1) => {
      let a = 0;
      for (let i = 0; i < D_IN; i++) a += xs[i] * w.W_enc[i * D_SAE + j] * scale;
      return a;
    };
    let p: number[];
    let f: number[];
    if (cfg.architecture === "gated") {
      p = Array.from({ length: D_SAE }, (_, j) => dot(j, Math.exp(w.r_mag![j])) + w.b_mag![j]);
      f = p.map((m, j) => (dot(j) + w.b_gate![j] > 0 ? Math.max(m, 0) : 0));
    } else {
      p = Array.from({ length: D_SAE }, (_, j) => dot(j) + w.b_enc![j]);
      if (cfg.architecture === "standard") f = p.map((v) => Math.max(v, 0));
      else if (cfg.architecture === "jumprelu")
        f = p.map((v, j) => (v > w.threshold![j] ? Math.max(v, 0) : 0));
      else {
        const order = p.map((v, j) => [v, j]).sort((a, b) => b[0] - a[0]);
        const keep = new Set(order.slice(0, cfg.k).map((e) => e[1]));
        f = p.map((v, j) => (keep.has(j) ? Math.max(v, 0) : 0));
      }
    }
    const out = Array.from({ length: D_IN }, (_, i) => {
      let a = w.b_dec[i];
      for (let j = 0; j < D_SAE; j++) a += f[j] * w.W_dec[j * D_IN + i];
      return a / s;
    });
    pre.push(p);
    post.push(f);
    recons.push(out);
  }
  return { pre, post, recons };
}

function assertClose(actual: ArrayLike<number>, expected: number[], tol: number, what: string): void {
  assert.equal(actual.length, expected.length, `${what}: length`);
  for (let i = 0; i < expected.length; i++) {
    assert.ok(
      Math.abs(actual[i] - expected[i]) <= tol * (1 + Math.abs(expected[i])),
      `${what}[${i}]: ${actual[i]} vs ${expected[i]}`,
    );
  }
}

const ROWS = 5;
const X = randn(mulberry32(99), ROWS * D_IN, 2);

for (const arch of ARCHS) {
  for (const applyBDecToInput of [true, false]) {
    test(`${arch} (apply_b_dec_to_input ${applyBDecToInput}) matches the float64 reference, written and read back`, async () => {
      const cfg = config(arch, { applyBDecToInput });
      const w = randomWeights(arch, 7);
      const dir = freshDir();
      await writeSaeLensDir(dir, { cfg, weights: w });
      const sae = loadSaeLensDir(dir, { kernels: referenceKernels });
      const { pre, post } = sae.encode(X, ROWS);
      const recons = sae.decode(post, ROWS);
      const ref = reference64(cfg, w, X, ROWS);
      assertClose(pre, ref.pre.flat(), 1e-5, "pre");
      assertClose(post, ref.post.flat(), 1e-5, "post");
      assertClose(recons, ref.recons.flat(), 1e-5, "recons");
      // Not vacuous: some features fire and some do not.
      const nz = post.filter((v) => v !== 0).length;
      assert.ok(nz > 0 && nz < post.length, `non-zero features ${nz}`);
      if (arch === "gated" || arch === "jumprelu") {
        // The gate / threshold decides somewhere: a positive pre-activation that stays 0.
        assert.ok(
          pre.some((v, i) => v > 0 && post[i] === 0),
          "the gate or threshold closes somewhere",
        );
      }
      if (arch === "topk")
        for (let r = 0; r < ROWS; r++)
          assert.ok(post.subarray(r * D_SAE, (r + 1) * D_SAE).filter((v) => v !== 0).length <= 3);
    });
  }
}

test("the onnx kernels give the same codes as the float64 reference", () => {
  const kernels = createOnnxKernels({ threads: 1 });
  for (const arch of ARCHS) {
    const cfg = config(arch);
    const w = randomWeights(arch, 11);
    const sae = new Sae({ cfg, weights: { ...w, W_enc: w.W_enc.slice() }, kernels });
    const { pre, post } = sae.encode(X, ROWS);
    const ref = reference64(cfg, w, X, ROWS);
    assertClose(pre, ref.pre.flat(), 1e-5, `${arch} pre`);
    assertClose(post, ref.post.flat(), 1e-5, `${arch} post`);
    // Held once: onnxruntime holds W_enc; the SAE keeps W_dec and the vectors only.
    assert.equal(
      sae.heldBytes,
      (2 * D_IN * D_SAE + D_IN + (arch === "gated" ? 3 : arch === "jumprelu" ? 2 : 1) * D_SAE) * 4,
    );
    assert.deepEqual(sae.encoderWeight(), w.W_enc);
    sae.dispose();
  }
});

test("activation_scaler.json with expected_average_only_in scales the input and unscales the output", async () => {
  const cfg = config("standard", { normalizeActivations: "expected_average_only_in" });
  const w = randomWeights("standard", 3);
  const dir = freshDir();
  await writeSaeLensDir(dir, { cfg, weights: w, scalingFactor: 2.5 });
  assert.deepEqual(JSON.parse(readFileSync(join(dir, "activation_scaler.json"), "utf8")), {
    scaling_factor: 2.5,
  });
  const sae = loadSaeLensDir(dir, { kernels: referenceKernels });
  const { pre, post } = sae.encode(X, ROWS);
  const ref = reference64(cfg, w, X, ROWS, 2.5);
  assertClose(pre, ref.pre.flat(), 1e-5, "pre");
  assertClose(sae.decode(post, ROWS), ref.recons.flat(), 1e-5, "recons");
  rmSync(join(dir, "activation_scaler.json"));
  assert.throws(
    () => loadSaeLensDir(dir, { kernels: referenceKernels }),
    /activation_scaler\.json is missing/,
  );
});

test("writes what SAE.load_from_disk reads: SAELens-6 cfg.json keys, tensor names, shapes and dtypes", async () => {
  for (const dtype of ["F32", "F16", "BF16"] as const) {
    for (const arch of ARCHS) {
      const cfg = config(arch);
      const w = randomWeights(arch, 5);
      const dir = freshDir();
      const logSparsity = Float32Array.from({ length: D_SAE }, (_, j) => -1 - j / 4);
      await writeSaeLensDir(dir, { cfg, weights: w, dtype, logSparsity });
      const json = JSON.parse(readFileSync(join(dir, "cfg.json"), "utf8"));
      const expectedKeys = [
        "architecture",
        "d_in",
        "d_sae",
        "dtype",
        "device",
        "apply_b_dec_to_input",
        "normalize_activations",
        "reshape_activations",
        "metadata",
      ];
      if (arch === "topk") expectedKeys.push("k");
      assert.deepEqual(Object.keys(json).sort(), expectedKeys.sort());
      assert.equal(json.architecture, arch);
      assert.equal(json.d_in, D_IN);
      assert.equal(json.d_sae, D_SAE);
      assert.equal(json.dtype, { F32: "float32", F16: "float16", BF16: "bfloat16" }[dtype]);
      assert.equal(json.metadata.hook_name, "blocks.1.hook_resid_pre");
      assert.equal(json.metadata.model_name, "tiny");
      // SAELens reads a config without a version >= 6 as pre-6 and renames its keys.
      assert.ok(Number(json.metadata.sae_lens_version.split(".")[0]) >= 6);
      if (arch === "topk") assert.equal(json.k, 3);

      const reader = SafetensorsReader.open(join(dir, "sae_weights.safetensors"));
      const expected: Record<string, number[]> = {
        W_enc: [D_IN, D_SAE],
        W_dec: [D_SAE, D_IN],
        b_dec: [D_IN],
      };
      if (arch === "gated") Object.assign(expected, { b_gate: [D_SAE], r_mag: [D_SAE], b_mag: [D_SAE] });
      else expected.b_enc = [D_SAE];
      if (arch === "jumprelu") expected.threshold = [D_SAE];
      assert.deepEqual([...reader.tensors.keys()].sort(), Object.keys(expected).sort());
      for (const [name, shape] of Object.entries(expected)) {
        assert.deepEqual(reader.tensors.get(name)!.shape, shape, name);
        assert.equal(reader.tensors.get(name)!.dtype, dtype, name);
      }
      reader.close();
      const sp = SafetensorsReader.open(join(dir, "sparsity.safetensors"));
      assert.deepEqual([...sp.tensors.keys()], ["sparsity"]);
      assert.deepEqual(sp.readFloat32("sparsity"), logSparsity);
      sp.close();

      // Read back: F32 exactly; F16/BF16 within half a unit of their last place.
      const sae = loadSaeLensDir(dir, { kernels: referenceKernels });
      const rel = { F32: 0, F16: 2 ** -11, BF16: 2 ** -8 }[dtype];
      const back = sae.weights();
      for (const name of Object.keys(expected) as (keyof SaeWeights)[]) {
        const a = back[name]!;
        const b = w[name]!;
        for (let i = 0; i < b.length; i++) {
          const tol = name === "r_mag" ? rel * Math.abs(b[i]) + 1e-6 : rel * Math.abs(b[i]);
          assert.ok(Math.abs(a[i] - b[i]) <= tol, `${dtype} ${arch} ${name}[${i}]: ${a[i]} vs ${b[i]}`);
        }
      }
      assert.deepEqual(sae.logSparsity, logSparsity);
      // The config round-trips.
      assert.deepEqual(readSaeConfig(dir), parseSaeConfig(json));
      assert.deepEqual({ ...sae.cfg, metadata: {} }, { ...cfg, dtype: json.dtype, metadata: {} });
    }
  }
});

/** A directory as SAELens would hand it over: a cfg.json written by hand, weights in BF16. */
function handWrittenDir(cfgJson: object, w: SaeWeights, dtype: "F32" | "BF16" = "F32"): string {
  const dir = freshDir();
  mkdirSync(dir);
  writeFileSync(join(dir, "cfg.json"), JSON.stringify(cfgJson));
  const tensors: Record<string, { shape: number[]; data: Float32Array }> = {};
  for (const [name, data] of Object.entries(w)) {
    const shape = name === "W_enc" ? [D_IN, D_SAE] : name === "W_dec" ? [D_SAE, D_IN] : [data.length];
    tensors[name] = { shape, data };
  }
  writeSafetensors(join(dir, "sae_weights.safetensors"), tensors, dtype);
  return dir;
}

/** Weights exactly representable in bfloat16 (multiples of 1/8 below 4), so the file holds them exactly. */
function bf16Exact(w: SaeWeights): SaeWeights {
  const out: Record<string, Float32Array> = {};
  for (const [k, v] of Object.entries(w) as [string, Float32Array][])
    out[k] = v.map((x) => Math.round(x * 8) / 8);
  return out as unknown as SaeWeights;
}

test("reads every config version: SAELens 6 metadata, older top-level hook_name / hook_point, activation_fn topk", () => {
  const topk = bf16Exact(randomWeights("topk", 21));
  const v6 = {
    architecture: "topk",
    d_in: D_IN,
    d_sae: D_SAE,
    dtype: "bfloat16",
    apply_b_dec_to_input: false,
    normalize_activations: "none",
    reshape_activations: "none",
    k: 2,
    metadata: { hook_name: "blocks.0.hook_mlp_out", sae_lens_version: "6.5.1", model_name: "gpt2" },
  };
  const old = {
    d_in: D_IN,
    d_sae: D_SAE,
    dtype: "torch.float32",
    hook_point: "blocks.0.hook_mlp_out",
    activation_fn_str: "topk",
    activation_fn_kwargs: { k: 2 },
    apply_b_dec_to_input: false,
    normalize_activations: false,
    sae_lens_training_version: "3.13.0",
  };
  const older = {
    ...old,
    hook_name: "blocks.0.hook_mlp_out",
    hook_point: undefined,
    activation_fn_str: undefined,
    activation_fn: "topk",
  };
  const x = X.subarray(0, 2 * D_IN);
  const ref = reference64(config("topk", { k: 2, applyBDecToInput: false }), topk, x, 2);
  for (const [name, json, dtype] of [
    ["v6", v6, "BF16"],
    ["hook_point", old, "F32"],
    ["hook_name", older, "F32"],
  ] as const) {
    const dir = handWrittenDir(json, topk, dtype);
    const cfg = readSaeConfig(dir);
    assert.equal(cfg.architecture, "topk", name);
    assert.equal(cfg.k, 2, name);
    assert.equal(cfg.hookName, "blocks.0.hook_mlp_out", name);
    assert.equal(cfg.applyBDecToInput, false, name);
    assert.equal(cfg.normalizeActivations, "none", name);
    const sae = loadSaeLensDir(dir, { kernels: referenceKernels });
    const { post } = sae.encode(x, 2);
    assertClose(post, ref.post.flat(), 1e-6, `${name} post`);
    assertClose(sae.decode(post, 2), ref.recons.flat(), 1e-6, `${name} recons`);
  }
  // An old standard SAE: no architecture, relu; the bool normalisation flag true means expected_average_only_in.
  const oldStd = parseSaeConfig({
    d_in: 4,
    d_sae: 8,
    hook_name: "blocks.0.hook_resid_pre",
    normalize_activations: true,
  });
  assert.equal(oldStd.architecture, "standard");
  assert.equal(oldStd.normalizeActivations, "expected_average_only_in");
  assert.equal(oldStd.applyBDecToInput, true);
  // Older hook_z SAEs: reshaping inferred from the hook name.
  assert.equal(
    parseSaeConfig({ d_in: 4, d_sae: 8, hook_name: "blocks.0.attn.hook_z" }).reshapeActivations,
    "hook_z",
  );
});

test("refuses bad SAEs before any work, naming the problem and the fix", async () => {
  const w = randomWeights("jumprelu", 2);
  const base = {
    architecture: "jumprelu",
    d_in: D_IN,
    d_sae: D_SAE,
    metadata: { hook_name: "blocks.0.hook_resid_pre", sae_lens_version: "6.0.0" },
  };
  const load = (json: object, weights: SaeWeights = w) =>
    loadSaeLensDir(handWrittenDir(json, weights), { kernels: referenceKernels });
  assert.throws(
    () => load({ ...base, architecture: "matryoshka" }),
    /unknown architecture "matryoshka": use one of standard, topk, jumprelu, gated/,
  );
  assert.throws(
    () => load({ ...base, architecture: "batchtopk" }),
    /saves a trained BatchTopK SAE as "jumprelu"/,
  );
  assert.throws(
    () => load({ ...base, normalize_activations: "layer_norm" }),
    /normalize_activations "layer_norm" is not supported/,
  );
  assert.throws(() => load({ ...base, metadata: {} }), /names no hook/);
  assert.throws(() => load({ ...base, d_in: 0 }), /"d_in" must be a positive integer/);
  assert.throws(() => load({ ...base, architecture: "topk" }), /"k" must be a positive integer/);
  const { threshold: _t, ...noThreshold } = w;
  assert.throws(() => load(base, noThreshold as SaeWeights), /lacks threshold .*architecture right/);
  assert.throws(
    () => load({ ...base, d_sae: D_SAE + 1 }),
    /W_enc is \[6, 10\] but the config \(d_in, d_sae\) needs \[6, 11\]/,
  );
  const nan = { ...w, W_dec: w.W_dec.slice() };
  nan.W_dec[7] = Number.POSITIVE_INFINITY;
  assert.throws(() => load(base, nan), /W_dec holds a non-finite value \(Infinity at element 7\)/);
  assert.throws(() => readSaeConfig(join(root, "nope")), /does not exist/);
  const noWeights = freshDir();
  mkdirSync(noWeights);
  writeFileSync(join(noWeights, "cfg.json"), JSON.stringify(base));
  assert.throws(
    () => loadSaeLensDir(noWeights, { kernels: referenceKernels }),
    /no sae_weights\.safetensors/,
  );
  writeFileSync(join(noWeights, "cfg.json"), "{not json");
  assert.throws(() => readSaeConfig(noWeights), /is not valid JSON/);

  // Against the model: the hook must exist and d_in be its width.
  const model = gpt2Config({
    nLayers: 2,
    dModel: D_IN,
    nHeads: 2,
    dHead: 3,
    dMlp: 24,
    nCtx: 16,
    dVocab: 50,
    lnEps: 1e-5,
    act: "gelu_new",
  });
  const cfg = parseSaeConfig(base);
  checkSaeFitsModel(cfg, model);
  assert.throws(
    () => checkSaeFitsModel({ ...cfg, hookName: "blocks.5.hook_resid_pre" }, model),
    /layer 5 does not exist/,
  );
  assert.throws(
    () => checkSaeFitsModel({ ...cfg, hookName: "blocks.0.hook_resid_prex" }, model),
    /Did you mean "blocks.0.hook_resid_pre"/,
  );
  assert.throws(
    () => checkSaeFitsModel({ ...cfg, hookName: "blocks.0.mlp.hook_post" }, model),
    /d_in is 6 but blocks.0.mlp.hook_post of this model is 24 wide/,
  );
  assert.throws(
    () => checkSaeFitsModel({ ...cfg, hookName: "blocks.0.attn.hook_pattern" }, model),
    /cannot read/,
  );
  checkSaeFitsModel({ ...cfg, hookName: "blocks.1.attn.hook_z", reshapeActivations: "hook_z" }, model);
});

test("--sae takes a hub id with a folder, fetched into the cache once (local stand-in hub)", async () => {
  const src = freshDir();
  await writeSaeLensDir(src, { cfg: config("topk"), weights: randomWeights("topk", 4) });
  const files: Record<string, Buffer> = {};
  for (const f of ["cfg.json", "sae_weights.safetensors"])
    files[`blocks.1.hook_resid_pre/${f}`] = readFileSync(join(src, f));
  files["README.md"] = Buffer.from("an SAE release");
  const commit = "89abcdef0123456789abcdef0123456789abcdef";
  const hub = await startFakeHub({ repos: { "someone/tiny-saes": { commit, files } } });
  const cacheDir = join(root, "hub-cache");
  try {
    const opts = { cacheDir, endpoint: hub.endpoint };
    const dir = await resolveSaeDir("someone/tiny-saes/blocks.1.hook_resid_pre", opts);
    assert.equal(
      dir,
      join(cacheDir, "models--someone--tiny-saes", "snapshots", commit, "blocks.1.hook_resid_pre"),
    );
    assert.deepEqual(
      readFileSync(join(dir, "sae_weights.safetensors")),
      files["blocks.1.hook_resid_pre/sae_weights.safetensors"],
    );
    const sae = loadSaeLensDir(dir, { kernels: referenceKernels });
    assert.equal(sae.cfg.k, 3);
    const before = hub.requests.length;
    assert.equal(
      await resolveSaeDir("someone/tiny-saes/blocks.1.hook_resid_pre", { ...opts, offline: true }),
      dir,
    );
    assert.equal(hub.requests.length, before, "a cached SAE needs no requests");
    await assert.rejects(
      resolveSaeDir("someone/tiny-saes/blocks.9.hook_resid_pre", opts),
      /404|not found|Entry/i,
    );
  } finally {
    await hub.close();
  }
  await assert.rejects(resolveSaeDir("./no/such/dir"), /neither an existing directory nor a hub id/);
});

test("writeSaeLensDir never replaces what circuitscope did not write, and replaces its own only with overwrite", async () => {
  const cfg = config("standard");
  const w = randomWeights("standard", 9);
  const theirs = freshDir();
  mkdirSync(theirs);
  writeFileSync(join(theirs, "notes.txt"), "mine");
  await assert.rejects(
    writeSaeLensDir(theirs, { cfg, weights: w }),
    /not a circuitscope report.*nothing was changed/,
  );
  assert.equal(readFileSync(join(theirs, "notes.txt"), "utf8"), "mine");
  const ours = freshDir();
  await writeSaeLensDir(ours, { cfg, weights: w });
  await assert.rejects(writeSaeLensDir(ours, { cfg, weights: w }), /add --overwrite/);
  const w2 = randomWeights("standard", 10);
  await writeSaeLensDir(ours, { cfg, weights: w2 }, { overwrite: true });
  assert.deepEqual(loadSaeLensDir(ours, { kernels: referenceKernels }).W_dec, w2.W_dec);
});
