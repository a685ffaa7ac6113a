/** Messages speak the CLI's language: its own flag names, counts that include BOS, no "Prompt 0" for one prompt. */
import assert from "node:assert/strict";
import { test } from "node:test";
import { runCli } from "../helpers/cli.ts";
import { FIXTURE_DIR } from "../helpers/fixture.ts";
import { loadFixtureModel, referenceJson } from "../helpers/reference.ts";

test("generate names -n and says how many new tokens fit after the prompt (BOS counted)", async () => {
  const prompt = "hello there, friend";
  const nTokens = loadFixtureModel().toTokens(prompt).length; // BOS included
  const res = await runCli(["generate", "--model", FIXTURE_DIR, "-n", "100", prompt]);
  assert.notEqual(res.code, 0);
  assert.match(
    res.stderr,
    new RegExp(`^circuitscope: error: The prompt is ${nTokens} tokens .* -n asks for 100 more`, "m"),
  );
  assert.match(res.stderr, new RegExp(`use -n ${64 - nTokens} or less`));
  assert.doesNotMatch(res.stderr, /maxNewTokens/);
});

test("a too-long single prompt is 'the prompt', and the excess counts the BOS token", async () => {
  const text = "word ".repeat(80);
  const nTokens = loadFixtureModel().toTokens(text).length;
  const res = await runCli(["predict", "--model", FIXTURE_DIR, text]);
  assert.notEqual(res.code, 0);
  assert.match(
    res.stderr,
    new RegExp(`The prompt is ${nTokens} tokens but the model's context is 64 tokens`),
  );
  assert.match(res.stderr, new RegExp(`shorten it by at least ${nTokens - 64} tokens`));
  assert.doesNotMatch(res.stderr, /Prompt 0/);
});

test("help of repeatable options shows no empty-list default", async () => {
  for (const command of ["heads", "composition", "patch"]) {
    const res = await runCli([command, "--help"]);
    assert.equal(res.code, 0);
    assert.doesNotMatch(res.stdout, /\(default: \[\]\)/, command);
  }
});

test("patch with the answer as the wrong token is an error naming both and the fix, not NaN with exit 0", async () => {
  const { clean, corrupted, answer } = referenceJson.prompts;
  const id = loadFixtureModel().toSingleToken(answer);
  const res = await runCli([
    "patch",
    "--model",
    FIXTURE_DIR,
    "--clean",
    clean[0],
    "--corrupted",
    corrupted[0],
    "--answer",
    answer,
    "--wrong",
    answer,
    "--target",
    "resid_pre",
  ]);
  assert.notEqual(res.code, 0, res.stdout);
  assert.match(
    res.stderr,
    new RegExp(
      `^circuitscope: error: The answer and the wrong token are the same token \\(id ${id}\\): .*nothing to measure\\. Give as the wrong token`,
      "m",
    ),
  );
  assert.doesNotMatch(res.stdout, /NaN/);
});
