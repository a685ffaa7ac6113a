/**
 * The CLI's help and messages speak for every supported family (GPT-2, the Llama family, GPT-NeoX), not GPT-2
 * alone: the program's description, `download`, `--no-prepend-bos` (the BOS token is `<s>` on Llama) and
 * generate's token count.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import type { Command } from "commander";
import { buildProgram } from "../../src/cli/main.ts";
import { runCli } from "../helpers/cli.ts";

const program = await buildProgram([]);
const command = (name: string): Command => {
  const cmd = program.commands.find((c) => c.name() === name);
  assert.ok(cmd, `command ${name} is registered`);
  return cmd;
};

test("the program's description names every family, not 'GPT-2-style models'", () => {
  const description = program.description();
  assert.doesNotMatch(description, /GPT-2-style/);
  assert.match(description, /GPT-2/);
  assert.match(description, /Llama/);
  assert.match(description, /GPT-NeoX: Pythia/);
  assert.match(description, /Gemma 2, Gemma 3 text/);
});

test("download offers any supported checkpoint, with a Llama-family and a Pythia hub id among its examples", () => {
  const download = command("download");
  assert.doesNotMatch(download.description(), /GPT-2 checkpoint/);
  const help = download.helpInformation();
  assert.match(help, /GPT-2, Llama family, GPT-NeoX\/Pythia or Gemma 2/);
  assert.match(help, /SmolLM2|TinyLlama/);
  assert.match(help, /EleutherAI\/pythia-70m/);
});

test("every --no-prepend-bos says it is the model's BOS token, naming GPT-2's and Llama's", () => {
  const withFlag = program.commands.filter((c) => c.options.some((o) => o.long === "--no-prepend-bos"));
  assert.deepEqual(withFlag.map((c) => c.name()).sort(), [
    "attribute",
    "circuit",
    "graph",
    "patch",
    "predict",
  ]);
  for (const cmd of withFlag) {
    const option = cmd.options.find((o) => o.long === "--no-prepend-bos");
    assert.match(option?.description ?? "", /the model's BOS token/, cmd.name());
    assert.match(option?.description ?? "", /<s> on Llama/, cmd.name());
  }
});

test("generate's too-long message counts the BOS token without naming GPT-2's (stories260k's is <s>)", async () => {
  const res = await runCli([
    "generate",
    "--model",
    "stories260k",
    "--backend",
    "reference",
    "-n",
    "100000",
    "Once",
  ]);
  assert.notEqual(res.code, 0);
  assert.match(
    res.stderr,
    /^circuitscope: error: The prompt is \d+ tokens \(counting the BOS token at the start\)/m,
  );
  assert.doesNotMatch(res.stderr, /endoftext/);
});
