import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { answerReport, topPredictions } from "../../src/analysis/predictions.ts";
import { runCli } from "../helpers/cli.ts";
import { FIXTURE_DIR } from "../helpers/fixture.ts";
import { loadFixtureModel, referenceJson } from "../helpers/reference.ts";
import { startFakeHub } from "../hub/fake-hub.ts";

const cache = mkdtempSync(join(tmpdir(), "cs-cli-cache-"));
after(() => rmSync(cache, { recursive: true, force: true }));

test("download fills the cache from the (stand-in) hub; predict then runs offline from it", async () => {
  const hub = await startFakeHub({
    repos: {
      "tiny/gpt2": {
        commit: "a".repeat(40),
        files: {
          "config.json": readFileSync(join(FIXTURE_DIR, "config.json")),
          "model.safetensors": readFileSync(join(FIXTURE_DIR, "model.safetensors")),
        },
      },
    },
  });
  const env = { HF_ENDPOINT: hub.endpoint, HF_HUB_CACHE: cache };
  try {
    const dl = await runCli(["download", "tiny/gpt2", "--json"], env);
    assert.equal(dl.code, 0, dl.stderr);
    const { dir } = JSON.parse(dl.stdout);
    assert.deepEqual(
      readFileSync(join(dir, "model.safetensors")),
      readFileSync(join(FIXTURE_DIR, "model.safetensors")),
    );
  } finally {
    await hub.close();
  }
  // The hub is gone: predict must be served from the cache.
  const prompt = referenceJson.prompts.clean[0];
  const res = await runCli(
    [
      "predict",
      "--model",
      "tiny/gpt2",
      "--offline",
      "--prompt",
      prompt,
      "--answer",
      "'re",
      "--top",
      "5",
      "--json",
    ],
    {
      HF_HUB_CACHE: cache,
    },
  );
  assert.equal(res.code, 0, res.stderr);
  const out = JSON.parse(res.stdout);
  assert.deepEqual(out.tokens, referenceJson.prompts.clean_tokens[0]);
  // Independent recomputation in-process.
  const model = loadFixtureModel();
  const row = model.run(prompt, { logits: "last" }).data;
  const top = topPredictions(row, 5, model.tokenizer);
  assert.deepEqual(
    out.top.map((t: { token: number }) => t.token),
    top.map((t) => t.token),
  );
  out.top.forEach((t: { logit: number; prob: number }, i: number) => {
    assert.ok(Math.abs(t.logit - top[i].logit) < 1e-4);
    assert.ok(Math.abs(t.prob - top[i].prob) < 1e-6);
  });
  const ans = answerReport(row, referenceJson.prompts.answer_token, model.tokenizer);
  assert.equal(out.answer.rank, ans.rank);
  assert.equal(out.answer.str, "'re");
  // Probabilities are ordered and the top token's rank is 0.
  assert.ok(out.top[0].prob >= out.top[4].prob);
});

test("CLI errors are clear and exit non-zero", async () => {
  const missing = await runCli(["predict", "--model", "tiny/not-there", "--offline", "hello"], {
    HF_HUB_CACHE: cache,
  });
  assert.notEqual(missing.code, 0);
  assert.match(missing.stderr, /circuitscope: error: .*is not in the Hugging Face cache.*To fix/);
  const multi = await runCli(["predict", "--model", FIXTURE_DIR, "--answer", " helping out", "hello"]);
  assert.notEqual(multi.code, 0);
  assert.match(multi.stderr, /not a single token/);
  const long = await runCli(["predict", "--model", FIXTURE_DIR, "word ".repeat(80)]);
  assert.notEqual(long.code, 0);
  assert.match(long.stderr, /context is 64 tokens/);
  const noDir = await runCli(["predict", "--model", "/nonexistent/dir", "hi"]);
  assert.notEqual(noDir.code, 0);
  assert.match(noDir.stderr, /error/);
});
