/**
 * Transcoders from the SAE trainer: a transcoder trained on data whose output is a planted linear map of
 * sparse inputs predicts it (explained variance recomputed here in float64 from the saved circuit-tracer
 * weights); a whole stories260k set opens with src/graphs' loader and holds circuit-tracer's keys, shapes and
 * dtypes (read from the raw safetensors header); its held-out metrics are recomputed independently; the run
 * is deterministic for a seed, and one stopped mid-layer and resumed writes the very same files.
 */
import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import { parse } from "yaml";
import { openCorpus } from "../../src/corpus/sources.ts";
import { loadTranscoderSet, type Transcoder } from "../../src/graphs/transcoder-set.ts";
import { HookedTransformer } from "../../src/model/hooked-transformer.ts";
import { type ActivationBuffer, harvestActivations } from "../../src/sae-train/harvest.ts";
import { evaluateCodec } from "../../src/sae-train/held-out.ts";
import { splitSequences } from "../../src/sae-train/train-sae.ts";
import {
  layerCheckpointPath,
  trainedTranscoder,
  trainTranscoders,
  transcoderCodec,
} from "../../src/sae-train/train-transcoders.ts";
import {
  defaultTrainSettings,
  FLOAT32_OPS,
  initTrainState,
  type TrainSettings,
  trainSteps,
} from "../../src/sae-train/trainer.ts";
import { referenceKernels } from "../../src/tensor/reference-kernels.ts";
import { mulberry32, randn } from "../../src/util/random.ts";
import { runCli } from "../helpers/cli.ts";
import { REPO_ROOT } from "../helpers/fixture.ts";

const dir = mkdtempSync(join(tmpdir(), "circuitscope-transcoders-"));
after(() => rmSync(dir, { recursive: true, force: true }));

/** Float64 explained variance of a transcoder's prediction of y from x, from its circuit-tracer tensors. */
function explainedVariance64(
  tc: Transcoder,
  x: ActivationBuffer,
  y: ActivationBuffer,
): { ev: number; l0: number } {
  const D = tc.dModel;
  const mean = new Float64Array(D);
  for (let r = 0; r < y.rows; r++) for (let i = 0; i < D; i++) mean[i] += y.data[r * D + i] / y.rows;
  let err = 0;
  let tot = 0;
  let active = 0;
  for (let r = 0; r < x.rows; r++) {
    const yHat = Float64Array.from(tc.bDec);
    for (let f = 0; f < tc.dTranscoder; f++) {
      let pre = tc.bEnc[f];
      for (let i = 0; i < D; i++) pre += tc.wEnc[f * D + i] * x.data[r * D + i];
      const a = pre > (tc.threshold ? tc.threshold[f] : 0) ? pre : 0;
      if (a === 0) continue;
      active++;
      for (let i = 0; i < D; i++) yHat[i] += a * tc.wDec[f * D + i];
    }
    for (let i = 0; i < D; i++) {
      err += (yHat[i] - y.data[r * D + i]) ** 2;
      tot += (y.data[r * D + i] - mean[i]) ** 2;
    }
  }
  return { ev: 1 - err / tot, l0: active / x.rows };
}

describe("a transcoder learns a planted linear map", () => {
  const width = 12;
  const rng = mulberry32(11);
  const dirs = Array.from({ length: 24 }, () => Array.from({ length: width }, () => randn(rng)));
  const M = Array.from({ length: width }, () => Array.from({ length: width }, () => randn(rng) / 2));
  /** x: sums of 2 of 24 directions with positive weights; y = M x + 0.3 (a different space from x). */
  const make = (rows: number): { x: ActivationBuffer; y: ActivationBuffer } => {
    const x = new Float32Array(rows * width);
    const y = new Float32Array(rows * width);
    for (let r = 0; r < rows; r++) {
      for (let a = 0; a < 2; a++) {
        const f = Math.floor(rng() * dirs.length);
        const w = 1 + rng();
        for (let i = 0; i < width; i++) x[r * width + i] += w * dirs[f][i];
      }
      for (let o = 0; o < width; o++) {
        let s = 0.3;
        for (let i = 0; i < width; i++) s += M[o][i] * x[r * width + i];
        y[r * width + o] = s;
      }
    }
    return { x: { hook: "in", width, rows, data: x }, y: { hook: "out", width, rows, data: y } };
  };
  const train = make(640);
  const heldOut = make(300);

  for (const architecture of ["batchtopk", "standard"] as const) {
    test(`${architecture}: held-out explained variance of y = M x is near 1, recomputed from the saved weights`, () => {
      const s: TrainSettings = defaultTrainSettings({
        architecture,
        dSae: 48,
        tokens: 64 * 1000,
        batchSize: 64,
        k: 2,
        l1: 0.01,
        lr: 3e-3,
        deadWindow: 5,
        seed: 7,
        applyBDecToInput: false,
      });
      const state = initTrainState(train, s);
      trainSteps(state, train, s, { ops: FLOAT32_OPS(referenceKernels) });
      const tc = trainedTranscoder(state, s, 0, width);
      const { ev, l0 } = explainedVariance64(tc, heldOut.x, heldOut.y);
      assert.ok(ev > 0.9, `explained variance ${ev}`);
      if (architecture === "batchtopk") assert.ok(l0 < 4, `L0 ${l0}`);
      // The metric the trainer reports is the same quantity.
      const reported = evaluateCodec(transcoderCodec(tc), heldOut.x, heldOut.y);
      assert.ok(Math.abs(reported.explainedVariance - ev) < 1e-4);
      assert.ok(Math.abs(reported.l0 - l0) < 1e-9);
    });
  }

  test("topk has no circuit-tracer form and is refused", () => {
    const s = defaultTrainSettings({ architecture: "topk", dSae: 8, tokens: 64, applyBDecToInput: false });
    assert.throws(() => trainedTranscoder(initTrainState(train, s), s, 0, width), /ReLU or JumpReLU/);
  });
});

describe("a stories260k transcoder set", async () => {
  const model = await HookedTransformer.fromPretrained(join(REPO_ROOT, "models/stories260k"), {
    backend: referenceKernels,
  });
  after(() => model.dispose());
  const SENTENCES = [
    "Once upon a time there was a little cat.",
    "Lily went to the park with her mom.",
    "The dog ran fast and jumped over the log.",
    "Tom had a red ball and a big blue truck.",
    "She smiled and said thank you to her friend.",
  ];
  const corpusPath = join(dir, "corpus.jsonl");
  writeFileSync(
    corpusPath,
    `${Array.from({ length: 20 }, (_, i) => JSON.stringify({ text: `${SENTENCES[i % 5]} ${SENTENCES[(i * 2 + 1) % 5]}` })).join("\n")}\n`,
  );
  const settings = defaultTrainSettings({
    architecture: "batchtopk",
    dSae: 32,
    tokens: 64 * 24,
    batchSize: 64,
    k: 4,
    lr: 2e-3,
    seed: 3,
    applyBDecToInput: false,
  });
  const layers = [0, 1, 2, 3, 4];
  const run = (out: string, extra: Partial<Parameters<typeof trainTranscoders>[0]> = {}) =>
    trainTranscoders({
      model,
      modelName: "stories260k",
      layers,
      featureInputHook: "ln2.hook_normalized",
      featureOutputHook: "hook_mlp_out",
      corpus: openCorpus(corpusPath),
      context: 64,
      settings,
      out,
      checkpointEvery: 5,
      ...extra,
    });
  const whole = join(dir, "whole");
  const first = await run(whole);
  const files = layers.map((l) => `layer_${l}.safetensors`);

  test("opens with the circuit-tracer loader; keys, shapes and dtypes as circuit-tracer reads them", async () => {
    assert.equal(first.complete, true);
    const set = await loadTranscoderSet(whole);
    assert.equal(set.featureInputHook, "ln2.hook_normalized");
    assert.equal(set.featureOutputHook, "hook_mlp_out");
    assert.equal(set.transcoders.length, 5);
    const config = parse(readFileSync(join(whole, "config.yaml"), "utf8"));
    assert.equal(config.model_kind, "transcoder_set");
    assert.deepEqual(
      config.transcoders.map((t: { filepath: string }) => t.filepath),
      files,
    );
    for (const file of files) {
      const bytes = readFileSync(join(whole, file));
      const n = Number(bytes.readBigUInt64LE(0));
      const header = JSON.parse(bytes.subarray(8, 8 + n).toString("utf8"));
      delete header.__metadata__;
      assert.deepEqual(Object.keys(header).sort(), [
        "W_dec",
        "W_enc",
        "activation_function.threshold",
        "b_dec",
        "b_enc",
      ]);
      assert.deepEqual(header.W_enc.shape, [32, 64]);
      assert.deepEqual(header.W_dec.shape, [32, 64]);
      assert.deepEqual(header.b_enc.shape, [32]);
      assert.deepEqual(header.b_dec.shape, [64]);
      assert.deepEqual(header["activation_function.threshold"].shape, [32]);
      for (const t of Object.values(header) as { dtype: string }[]) assert.equal(t.dtype, "F32");
    }
    for (const l of layers) {
      assert.ok(existsSync(join(whole, `layer_${l}.training_log.jsonl`)));
      assert.ok(existsSync(join(whole, `layer_${l}.training.html`)));
      assert.equal(existsSync(layerCheckpointPath(whole, l)), false, "checkpoints removed when done");
    }
  });

  test("each layer's held-out explained variance and L0 are what float64 recomputes from the files", async () => {
    const set = await loadTranscoderSet(whole);
    const summary = JSON.parse(readFileSync(join(whole, "training.json"), "utf8"));
    const { heldOut } = splitSequences(model, openCorpus(corpusPath), 64);
    const bufs = harvestActivations(model, heldOut, {
      hooks: layers.flatMap((l) => [`blocks.${l}.ln2.hook_normalized`, `blocks.${l}.hook_mlp_out`]),
    });
    for (const l of layers) {
      const { ev, l0 } = explainedVariance64(set.transcoders[l], bufs[2 * l], bufs[2 * l + 1]);
      const reported = summary.layers[l].heldOut;
      assert.ok(
        Math.abs(reported.explainedVariance - ev) < 1e-4,
        `layer ${l}: ${reported.explainedVariance} vs ${ev}`,
      );
      assert.ok(Math.abs(reported.l0 - l0) < 1e-9, `layer ${l}: L0 ${reported.l0} vs ${l0}`);
      assert.equal(reported.tokens, bufs[2 * l].rows);
    }
  });

  test("the same seed writes the same files; another seed does not", async () => {
    const again = join(dir, "again");
    await run(again);
    for (const f of files) assert.deepEqual(readFileSync(join(again, f)), readFileSync(join(whole, f)), f);
    const other = join(dir, "other");
    await run(other, { settings: { ...settings, seed: 4 } });
    assert.notDeepEqual(readFileSync(join(other, files[0])), readFileSync(join(whole, files[0])));
  });

  test("stopped inside layer 2 and resumed, the set equals the uninterrupted one, bit for bit", async () => {
    const out = join(dir, "resumed");
    const stop = new AbortController();
    const stopped = await run(out, {
      signal: stop.signal,
      onStep: (layer, log) => {
        if (layer === 2 && log.step === 12) stop.abort();
      },
    });
    assert.equal(stopped.complete, false);
    assert.equal(existsSync(out), false, "nothing written at --out when stopped");
    assert.deepEqual(
      stopped.layers.map((r) => r.steps),
      [24, 24, 13],
    );
    assert.ok(existsSync(layerCheckpointPath(out, 2)));
    await assert.rejects(run(out), /--resume/);
    const resumed = await run(out, { resume: true });
    assert.equal(resumed.complete, true);
    for (const f of files) assert.deepEqual(readFileSync(join(out, f)), readFileSync(join(whole, f)), f);
    assert.deepEqual(
      readFileSync(join(out, "layer_2.training_log.jsonl")),
      readFileSync(join(whole, "layer_2.training_log.jsonl")),
    );
    for (const l of layers) assert.equal(existsSync(layerCheckpointPath(out, l)), false);
  });
});

describe("the command line", () => {
  const corpusPath = join(dir, "cli-corpus.jsonl");
  writeFileSync(
    corpusPath,
    `${Array.from({ length: 20 }, (_, i) => JSON.stringify({ text: `Lily had a ball number ${i}. She gave it to Tom and they played.` })).join("\n")}\n`,
  );
  const base = ["sae", "train", "--d-sae", "16", "--k", "2", "--corpus", corpusPath, "--batch-size", "32"];

  test("sae train --layers all writes a set that transcoders eval reads", async () => {
    const out = join(dir, "cli-set");
    const args = [...base, "--tokens", "320", "--input-hook", "ln2.hook_normalized"];
    const trained = await runCli([
      ...args,
      "--output-hook",
      "hook_mlp_out",
      "--layers",
      "all",
      "--out",
      out,
      "--json",
    ]);
    assert.equal(trained.code, 0, trained.stderr);
    const summary = JSON.parse(trained.stdout);
    assert.equal(summary.complete, true);
    assert.deepEqual(
      summary.layers.map((r: { steps: number }) => r.steps),
      [10, 10, 10, 10, 10],
    );
    const evaluated = await runCli([
      "transcoders",
      "eval",
      "--transcoders",
      out,
      "--corpus",
      corpusPath,
      "--json",
    ]);
    assert.equal(evaluated.code, 0, evaluated.stderr);
    const r = JSON.parse(evaluated.stdout);
    assert.equal(r.layers.length, 5);
    assert.ok(r.ce_loss_zero_ablation > r.ce_loss_clean);
    assert.ok(Number.isFinite(r.ce_loss_score));
  });

  test("bad input is refused before any training, naming the fix", async () => {
    const out = join(dir, "never");
    const cases: [string[], RegExp][] = [
      [
        [
          "--input-hook",
          "ln2.hook_normalized",
          "--output-hook",
          "hook_mlp_out",
          "--layers",
          "all",
          "--architecture",
          "topk",
        ],
        /ReLU or JumpReLU.*batchtopk/,
      ],
      [
        ["--input-hook", "blocks.0.ln2.hook_normalized", "--output-hook", "hook_mlp_out", "--layers", "all"],
        /block-relative/,
      ],
      [
        ["--input-hook", "blocks.0.ln2.hook_normalized", "--output-hook", "blocks.1.hook_mlp_out"],
        /one block/,
      ],
      [
        ["--input-hook", "ln2.hook_normalized", "--output-hook", "hook_mlp_out", "--layers", "0,7"],
        /block 7 does not exist/,
      ],
      [["--input-hook", "ln2.hook_normalized", "--layers", "all"], /both --input-hook and --output-hook/],
      [
        [
          "--hook",
          "blocks.0.hook_resid_pre",
          "--input-hook",
          "blocks.0.ln2.hook_normalized",
          "--output-hook",
          "blocks.0.hook_mlp_out",
        ],
        /drop --hook/,
      ],
      [
        ["--input-hook", "ln2.hook_normalised", "--output-hook", "hook_mlp_out", "--layers", "all"],
        /Did you mean "blocks.0.ln2.hook_normalized"/,
      ],
    ];
    for (const [args, message] of cases) {
      const res = await runCli([...base, "--out", out, ...args]);
      assert.notEqual(res.code, 0, args.join(" "));
      assert.match(res.stderr, message);
      assert.doesNotMatch(res.stderr, /\n\s+at /);
      assert.equal(existsSync(out), false);
    }
  });
});
