/**
 * `sae features`, `sae eval` and `predict` / `generate` with --sae, --steer, --ablate, run as a user
 * would, against the library computing the same thing; and the refusals.
 */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { HookedTransformer } from "../../src/model/hooked-transformer.ts";
import { activationPatching } from "../../src/patching/activation-patching.ts";
import { attributionPatching } from "../../src/patching/attribution-patching.ts";
import { featureEditHook, saeSplice } from "../../src/sae/attach.ts";
import { evaluateSae, promptFeatures } from "../../src/sae/evaluate.ts";
import { loadSaeLensDir, writeSaeLensDir } from "../../src/sae/saelens-dir.ts";
import { referenceKernels } from "../../src/tensor/reference-kernels.ts";
import { type CliResult, cliResult, spawnCli } from "../helpers/cli.ts";
import { randomSaeWeights, saeConfigFor } from "../helpers/random-sae.ts";

const root = mkdtempSync(join(tmpdir(), "cs-sae-cli-"));
after(() => rmSync(root, { recursive: true, force: true }));

const HOOK = "blocks.2.hook_resid_pre";
const SAE_DIR = join(root, "sae");
await writeSaeLensDir(SAE_DIR, {
  cfg: saeConfigFor({ architecture: "topk", dIn: 64, dSae: 128, hookName: HOOK, k: 5 }),
  weights: randomSaeWeights({ architecture: "topk", dIn: 64, dSae: 128, seed: 8, encScale: 0.3 }),
});
const model = await HookedTransformer.fromPretrained("stories260k", { backend: "reference" });
const sae = loadSaeLensDir(SAE_DIR, { kernels: referenceKernels });
const PROMPT = "Once upon a time, there was a little girl named Lily. She";

async function cli(args: string[]): Promise<CliResult> {
  const child = spawnCli(args);
  try {
    return await cliResult(child);
  } finally {
    child.kill("SIGKILL");
  }
}

const close = (a: number, b: number, tol: number, what: string) =>
  assert.ok(Math.abs(a - b) <= tol * (1 + Math.abs(b)), `${what}: ${a} vs ${b}`);

test("sae features --json: tokens (BOS first), the hook, d_sae activations per position", async () => {
  const r = await cli([
    "sae",
    "features",
    "--model",
    "stories260k",
    "--sae",
    SAE_DIR,
    "--prompt",
    PROMPT,
    "--json",
  ]);
  assert.equal(r.code, 0, r.stderr);
  const out = JSON.parse(r.stdout);
  assert.deepEqual(Object.keys(out), ["tokens", "hook", "activations"]);
  const expected = promptFeatures(model, sae, PROMPT);
  assert.deepEqual(out.tokens, expected.tokens);
  assert.equal(out.hook, HOOK);
  assert.equal(out.activations.length, expected.tokens.length);
  for (const [p, row] of (out.activations as number[][]).entries()) {
    assert.equal(row.length, 128);
    for (let j = 0; j < 128; j++) close(row[j], expected.activations[p * 128 + j], 1e-4, `[${p}][${j}]`);
  }
  const text = await cli([
    "sae",
    "features",
    "--model",
    "stories260k",
    "--sae",
    SAE_DIR,
    "--prompt",
    "Once upon",
    "--top",
    "2",
  ]);
  assert.equal(text.code, 0, text.stderr);
  assert.match(text.stdout, /blocks\.2\.hook_resid_pre: top 2 features per token/);
  assert.equal(text.stdout.trim().split("\n").length, 1 + model.toTokens("Once upon").length);
});

test("sae eval --json: exactly the issue's keys, the library's values", async () => {
  const corpus = join(root, "stories.jsonl");
  const texts = [
    "Once upon a time, there was a little girl named Lily.",
    "Tom had a big red ball. He played with it every day.",
    "The sun was hot. The dog sat in the shade.",
  ];
  writeFileSync(corpus, `${texts.map((text) => JSON.stringify({ text, id: 1 })).join("\n")}\n`);
  const r = await cli([
    "sae",
    "eval",
    "--model",
    "stories260k",
    "--sae",
    SAE_DIR,
    "--corpus",
    corpus,
    "--context",
    "10",
    "--json",
  ]);
  assert.equal(r.code, 0, r.stderr);
  const out = JSON.parse(r.stdout);
  const keys = [
    "l0",
    "explained_variance",
    "ce_loss_clean",
    "ce_loss_with_sae",
    "ce_loss_zero_ablation",
    "ce_loss_score",
    "dead_fraction",
    "tokens",
  ];
  assert.deepEqual(Object.keys(out).sort(), keys.sort());
  const expected = await evaluateSae(model, sae, texts, { context: 10 });
  assert.equal(out.tokens, expected.tokens);
  for (const k of keys) close(out[k], expected[k as keyof typeof expected], 1e-4, k);
});

test("predict and generate with --sae, --steer and --ablate equal the library's spliced runs", async () => {
  const r = await cli([
    "predict",
    "--model",
    "stories260k",
    "--sae",
    SAE_DIR,
    "--steer",
    "3=30",
    "--ablate",
    "7",
    PROMPT,
    "--json",
    "--top",
    "5",
  ]);
  assert.equal(r.code, 0, r.stderr);
  const out = JSON.parse(r.stdout);
  const logits = model.run(PROMPT, {
    logits: "last",
    splices: [saeSplice(sae, { useErrorTerm: true })],
    fwdHooks: [featureEditHook(sae, { steer: new Map([[3, 30]]), ablate: [7] })],
  }).data;
  const order = [...logits.keys()].sort((a, b) => logits[b] - logits[a]).slice(0, 5);
  assert.deepEqual(
    out.top.map((t: { token: number }) => t.token),
    order,
  );
  const plain = model.run(PROMPT, { logits: "last" }).data;
  assert.notDeepEqual(order, [...plain.keys()].sort((a, b) => plain[b] - plain[a]).slice(0, 5));

  const g = await cli([
    "generate",
    "--model",
    "stories260k",
    "--sae",
    SAE_DIR,
    "--steer",
    "3=30",
    "-t",
    "0",
    "-n",
    "6",
    PROMPT,
    "--json",
  ]);
  assert.equal(g.code, 0, g.stderr);
  const expected = model.generate(PROMPT, {
    maxNewTokens: 6,
    temperature: 0,
    splices: [saeSplice(sae, { useErrorTerm: true })],
    fwdHooks: [featureEditHook(sae, { steer: new Map([[3, 30]]) })],
  });
  assert.deepEqual(JSON.parse(g.stdout).newTokens, expected.newTokens);
});

test("sae patch --json: every feature at every position, the library's exact and attribution values", async () => {
  const clean = "There was a little girl. One night,";
  const corrupted = "There was a little boy. One night,";
  const r = await cli([
    "sae",
    "patch",
    "--model",
    "stories260k",
    "--sae",
    SAE_DIR,
    "--clean",
    clean,
    "--corrupted",
    corrupted,
    "--answer",
    " she",
    "--wrong",
    " he",
    "--json",
  ]);
  assert.equal(r.code, 0, r.stderr);
  const out = JSON.parse(r.stdout);
  const sweep = {
    clean: [clean],
    corrupted: [corrupted],
    answers: { answer: model.toSingleToken(" she"), wrong: model.toSingleToken(" he") },
    target: { kind: "features", sae } as const,
  };
  const expected = {
    exact: await activationPatching(model, sweep),
    attribution: attributionPatching(model, sweep),
  };
  assert.equal(out.hook, HOOK);
  assert.deepEqual(out.shape, expected.exact.shape);
  assert.deepEqual(out.axes, ["pos", "feature"]);
  close(out.clean, expected.exact.clean, 1e-4, "clean");
  for (const method of ["exact", "attribution"] as const) {
    const flat = (out[method] as number[][]).flat();
    assert.equal(flat.length, expected.exact.values.length);
    for (const [i, v] of flat.entries()) close(v, expected[method].values[i], 1e-3, `${method}[${i}]`);
  }
  assert.ok(
    expected.exact.values.some((v) => Math.abs(v) > 1e-3),
    "some feature matters",
  );
});

test("patch --target features --sae: the library's features target, JSON by [pos][feature] and a named top list", async () => {
  const args = [
    "patch",
    "--model",
    "stories260k",
    "--target",
    "features",
    "--sae",
    SAE_DIR,
    "--clean",
    "There was a little girl. One night,",
    "--corrupted",
    "There was a little boy. One night,",
    "--answer",
    " she",
    "--wrong",
    " he",
  ];
  const [json, text] = await Promise.all([cli([...args, "--json"]), cli(args)]);
  assert.equal(json.code, 0, json.stderr);
  assert.equal(text.code, 0, text.stderr);
  const expected = await activationPatching(model, {
    clean: [args[8]],
    corrupted: [args[10]],
    answers: { answer: model.toSingleToken(" she"), wrong: model.toSingleToken(" he") },
    target: { kind: "features", sae },
  });
  const out = JSON.parse(json.stdout);
  assert.equal(out.target, "features");
  assert.deepEqual(out.axes, ["pos", "feature"]);
  const flat = (out.values as number[][]).flat();
  assert.equal(flat.length, expected.values.length);
  for (const [i, v] of flat.entries()) close(v, expected.values[i], 1e-3, `values[${i}]`);
  // The text's first effect is the largest cell, named by position, token and feature.
  const best = expected.values.reduce((b, v, i) => (Math.abs(v) > Math.abs(expected.values[b]) ? i : b), 0);
  const [P, F] = expected.shape;
  assert.equal(P * F, expected.values.length);
  const first = text.stdout.split("\n").find((l) => /^ {2}pos /.test(l));
  assert.match(
    first ?? "",
    new RegExp(
      `^  pos ${Math.floor(best / F)} .*, feature ${best % F} +${expected.values[best].toFixed(4)}$`,
    ),
  );
});

test("refusals: clear errors, non-zero exit", async () => {
  const wrongWidth = join(root, "wide");
  await writeSaeLensDir(wrongWidth, {
    cfg: saeConfigFor({ architecture: "standard", dIn: 32, dSae: 16, hookName: HOOK }),
    weights: randomSaeWeights({ architecture: "standard", dIn: 32, dSae: 16, seed: 1 }),
  });
  const pair = ["--clean", "a girl", "--corrupted", "a boy", "--answer", " she", "--wrong", " he"];
  const cases: [string[], RegExp][] = [
    [
      ["patch", "--model", "stories260k", "--target", "features", ...pair],
      /--target features .*add --sae DIR/,
    ],
    [
      ["patch", "--model", "stories260k", "--target", "resid_pre", "--sae", SAE_DIR, ...pair],
      /--sae applies to --target features only/,
    ],
    [["patch", "--model", "stories260k", "--target", "features", "--sae", wrongWidth, ...pair], /d_in|width/],
    [
      ["predict", "--model", "stories260k", "--steer", "3=1", "Hi"],
      /--steer and --ablate edit SAE features: add --sae DIR/,
    ],
    [
      ["predict", "--model", "stories260k", "--sae", SAE_DIR, "--steer", "3", "Hi"],
      /--steer 3: write FEATURE=VALUE/,
    ],
    [
      ["predict", "--model", "stories260k", "--sae", SAE_DIR, "--ablate", "128", "Hi"],
      /--ablate 128: a feature is an integer from 0 to 127/,
    ],
    [
      ["sae", "features", "--model", "stories260k", "--sae", wrongWidth, "--prompt", "Hi"],
      /d_in is 32 but blocks\.2\.hook_resid_pre of this model is 64 wide/,
    ],
    [
      ["sae", "features", "--model", "stories260k", "--sae", join(root, "missing"), "--prompt", "Hi"],
      /neither an existing directory nor a hub id|does not exist/,
    ],
    [["sae", "eval", "--model", "stories260k", "--sae", SAE_DIR], /No corpus/],
  ];
  for (const [args, message] of cases) {
    const r = await cli(args);
    assert.notEqual(r.code, 0, args.join(" "));
    assert.match(r.stderr, message, args.join(" "));
    assert.doesNotMatch(r.stderr, /\n\s+at /, "no stack trace");
  }
});
