/**
 * `sae train` and `corpus sample` as a user runs them: the SAELens directory loads with src/sae and its
 * held-out explained variance is recomputed here in float64 from the held-out texts; Ctrl-C keeps a
 * checkpoint and `--resume` ends with the very weights of an uninterrupted run; bad input is refused
 * before any work.
 */
import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import { openCorpus } from "../../src/corpus/sources.ts";
import { HookedTransformer } from "../../src/model/hooked-transformer.ts";
import { loadSaeLensDir } from "../../src/sae/saelens-dir.ts";
import { harvestActivations } from "../../src/sae-train/harvest.ts";
import { splitSequences } from "../../src/sae-train/train-sae.ts";
import { referenceKernels } from "../../src/tensor/reference-kernels.ts";
import { cliResult, runCli, spawnCli } from "../helpers/cli.ts";
import { REPO_ROOT } from "../helpers/fixture.ts";

const dir = mkdtempSync(join(tmpdir(), "circuitscope-sae-train-cli-"));
after(() => rmSync(dir, { recursive: true, force: true }));

const SENTENCES = [
  "Once upon a time there was a little cat.",
  "Lily went to the park with her mom.",
  "The dog ran fast and jumped over the log.",
  "Tom had a red ball and a big blue truck.",
  "She smiled and said thank you to her friend.",
  "The sun was warm and the birds sang.",
  "He wanted to play in the garden all day.",
  "They found a shiny rock near the river.",
];
const corpus = join(dir, "corpus.jsonl");
writeFileSync(
  corpus,
  `${Array.from({ length: 40 }, (_, i) => JSON.stringify({ text: `${SENTENCES[i % 8]} ${SENTENCES[(i * 3 + 1) % 8]}` })).join("\n")}\n`,
);
const HOOK = "blocks.1.hook_resid_pre";
const base = (out: string, tokens: number) => [
  "sae",
  "train",
  "--model",
  "stories260k",
  "--hook",
  HOOK,
  "--d-sae",
  "32",
  "--k",
  "4",
  "--corpus",
  corpus,
  "--batch-size",
  "64",
  "--tokens",
  String(tokens),
  "--lr",
  "0.002",
  "--out",
  out,
];

describe("sae train", () => {
  test("writes a SAELens dir whose held-out explained variance is what float64 recomputes", async () => {
    const out = join(dir, "sae");
    const res = await runCli([...base(out, 64 * 120), "--json"]);
    assert.equal(res.code, 0, res.stderr);
    const summary = JSON.parse(res.stdout);
    assert.equal(summary.steps, 120);
    // The default (onnx) kernels run a TopK step as one graph, and the SAE's record says so.
    assert.equal(summary.stepEngine, "onnxruntime graph");
    assert.equal(
      JSON.parse(readFileSync(join(out, "training.json"), "utf8")).stepEngine,
      "onnxruntime graph",
    );
    const cfg = JSON.parse(readFileSync(join(out, "cfg.json"), "utf8"));
    assert.equal(cfg.architecture, "topk");
    assert.equal(cfg.k, 4);
    assert.equal(cfg.metadata.hook_name, HOOK);
    const log = readFileSync(join(out, "training_log.jsonl"), "utf8")
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l));
    assert.equal(log.length, 120);
    assert.ok(log.every((l) => l.l0 <= 4 && l.dead >= 0 && l.dead <= 1));
    assert.ok(
      readFileSync(join(out, "training.html"), "utf8").includes("Feature density on held-out tokens"),
    );

    // Independent: the held-out texts' activations, the SAE's reconstruction, the variance ratio in float64.
    const model = await HookedTransformer.fromPretrained(join(REPO_ROOT, "models/stories260k"), {
      backend: referenceKernels,
    });
    const sae = loadSaeLensDir(out, { kernels: referenceKernels });
    try {
      const { heldOut } = splitSequences(model, openCorpus(corpus), 512);
      const [x] = harvestActivations(model, heldOut, { hooks: [HOOK] });
      const f = sae.encode(x.data, x.rows).post;
      const W = sae.W_dec;
      const mean = new Float64Array(64);
      for (let r = 0; r < x.rows; r++) for (let i = 0; i < 64; i++) mean[i] += x.data[r * 64 + i] / x.rows;
      let err = 0;
      let tot = 0;
      for (let r = 0; r < x.rows; r++)
        for (let i = 0; i < 64; i++) {
          let xh = sae.b_dec[i];
          for (let j = 0; j < 32; j++) xh += f[r * 32 + j] * W[j * 64 + i];
          err += (x.data[r * 64 + i] - xh) ** 2;
          tot += (x.data[r * 64 + i] - mean[i]) ** 2;
        }
      assert.equal(summary.heldOut.tokens, x.rows);
      assert.ok(Math.abs(summary.heldOut.explainedVariance - (1 - err / tot)) < 1e-4);
      assert.ok(summary.heldOut.explainedVariance > 0.3, `EV ${summary.heldOut.explainedVariance}`);
    } finally {
      sae.dispose();
      model.dispose();
    }
  });

  test("Ctrl-C keeps a checkpoint; --resume ends with the weights of an uninterrupted run, bit for bit", async () => {
    const tokens = 64 * 2500;
    const whole = join(dir, "whole");
    const stopped = join(dir, "stopped");
    const args = [...base(stopped, tokens), "--checkpoint-every", "20"];
    const child = spawnCli(args);
    try {
      const result = cliResult(child);
      // Interrupt once the first checkpoint is reported (an event, not a guess at timing).
      await new Promise<void>((resolve, reject) => {
        let seen = "";
        child.stderr.on("data", (d) => {
          seen += d;
          if (/checkpoint: step \d+/.test(seen)) resolve();
        });
        child.on("close", () => reject(new Error(`ended before a checkpoint:\n${seen}`)));
      });
      child.kill("SIGINT");
      const res = await result;
      assert.equal(res.code, 130, res.stderr);
      assert.match(res.stderr, /--resume/);
    } finally {
      child.kill("SIGKILL");
    }
    assert.ok(existsSync(`${stopped}.checkpoint.safetensors`));
    assert.ok(!existsSync(stopped), "no SAE directory from a stopped run");
    const again = await runCli([...base(stopped, tokens), "--checkpoint-every", "20"]);
    assert.equal(again.code, 1);
    assert.match(again.stderr, /add --resume/);
    const resumed = await runCli([
      ...base(stopped, tokens),
      "--checkpoint-every",
      "20",
      "--resume",
      "--json",
    ]);
    assert.equal(resumed.code, 0, resumed.stderr);
    assert.ok(!existsSync(`${stopped}.checkpoint.safetensors`), "the finished run removed its checkpoint");
    const full = await runCli([...base(whole, tokens), "--json"]);
    assert.equal(full.code, 0, full.stderr);
    assert.deepEqual(
      readFileSync(join(stopped, "sae_weights.safetensors")),
      readFileSync(join(whole, "sae_weights.safetensors")),
    );
    assert.deepEqual(
      readFileSync(join(stopped, "training_log.jsonl"), "utf8"),
      readFileSync(join(whole, "training_log.jsonl"), "utf8"),
    );
  });

  test("bad input is refused before the model loads, naming the fix", async () => {
    const cases: [string[], RegExp][] = [
      [
        [
          "sae",
          "train",
          "--hook",
          HOOK,
          "--d-sae",
          "8",
          "--corpus",
          corpus,
          "--out",
          join(dir, "a"),
          "--architecture",
          "gated",
        ],
        /Unknown --architecture "gated".*topk/,
      ],
      [["sae", "train", "--hook", HOOK, "--corpus", corpus, "--out", join(dir, "a")], /--d-sae/],
      [
        [
          "sae",
          "train",
          "--hook",
          HOOK,
          "--d-sae",
          "8",
          "--corpus",
          corpus,
          "--out",
          join(dir, "a"),
          "--l1",
          "3",
        ],
        /--l1 has no effect/,
      ],
      [
        [
          "sae",
          "train",
          "--hook",
          HOOK,
          "--d-sae",
          "8",
          "--k",
          "9",
          "--corpus",
          corpus,
          "--out",
          join(dir, "a"),
        ],
        /--k 9 is more than --d-sae 8/,
      ],
      [
        ["sae", "train", "--hook", HOOK, "--d-sae", "8", "--corpus", corpus, "--out", corpus],
        /is a file, not a directory/,
      ],
      [
        [
          "sae",
          "train",
          "--hook",
          HOOK,
          "--d-sae",
          "8",
          "--corpus",
          corpus,
          "--out",
          join(dir, "a"),
          "--resume",
        ],
        /no checkpoint/,
      ],
    ];
    for (const [args, message] of cases) {
      const res = await runCli(args);
      assert.notEqual(res.code, 0, args.join(" "));
      assert.match(res.stderr, message);
      assert.doesNotMatch(res.stderr, /\n\s+at /);
    }
  });
});

describe("corpus sample", () => {
  test("writes JSONL that the corpus reader reads back, the same for the same seed", async () => {
    const a = join(dir, "a.jsonl");
    const b = join(dir, "b.jsonl");
    for (const out of [a, b]) {
      const res = await runCli([
        "corpus",
        "sample",
        "--tokens",
        "150",
        "--seed",
        "2",
        "--out",
        out,
        "--json",
      ]);
      assert.equal(res.code, 0, res.stderr);
      assert.ok(JSON.parse(res.stdout).tokens >= 150);
    }
    assert.equal(readFileSync(a, "utf8"), readFileSync(b, "utf8"));
    const texts = [...openCorpus(a).documents()];
    assert.ok(texts.length >= 1 && texts.every((t) => t.length > 0));
    const line = JSON.parse(readFileSync(a, "utf8").split("\n")[0]);
    assert.match(line.provenance, /sampled from the model itself/);
    const bad = await runCli(["corpus", "sample", "--tokens", "10", "--out", join(dir, "x.txt")]);
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /should end in \.jsonl/);
  });
});
