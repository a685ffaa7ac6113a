/**
 * Every CLI flag that takes a layer, head, position or neuron refuses a negative one with a message that
 * names the flag and the valid range, and exits non-zero (indices count from 0; none counts from the end).
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { cliResult, spawnCli } from "../helpers/cli.ts";

const M = ["--model", "stories260k"];
const PAIR = ["--clean", "Lily was happy. She", "--corrupted", "Tim was happy. She", "--answer", " she"];

const cases: [string, string[], RegExp][] = [
  [
    "patch --layer",
    ["patch", ...M, ...PAIR, "--wrong", " he", "-t", "neurons", "--layer=-1"],
    /layer -1 is out of range: use --layer between 0 and 4/,
  ],
  [
    "patch --pos",
    ["patch", ...M, ...PAIR, "--wrong", " he", "-t", "neurons", "--layer=1", "--pos=-1"],
    /position -1 is out of range: use --pos between 0 and/,
  ],
  [
    "neuron --layer",
    ["neuron", ...M, "--layer=-1", "--neuron=3"],
    /Layer -1 does not exist: this model has layers 0\.\.4/,
  ],
  ["neuron --neuron", ["neuron", ...M, "--layer=1", "--neuron=-3"], /Neuron -3 does not exist/],
  [
    "attention --heads",
    ["attention", ...M, "--heads=1.-2", "-p", "Lily was"],
    /Bad head "1\.-2": write LAYER\.INDEX/,
  ],
  ["index --layers", ["index", ...M, "--corpus", "README.md", "--layers", "0,-1"], /Bad --layers "0,-1"/],
];

for (const [what, args, message] of cases) {
  test(`${what}: a negative index is refused with the valid range, non-zero exit`, async () => {
    const child = spawnCli(args);
    try {
      const out = await cliResult(child);
      assert.notEqual(out.code, 0, `${what} exited 0: ${out.stdout}`);
      assert.match(out.stderr, message);
      assert.equal(out.stdout, "", "nothing printed as a result");
    } finally {
      child.kill("SIGKILL");
    }
  });
}
