/**
 * `sae harvest` and `sae train --activations` on the command line: bad input is refused before any work,
 * naming the problem and the fix, with a non-zero exit; a missing shard is named.
 */
import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { runCli } from "../helpers/cli.ts";
import { REPO_ROOT } from "../helpers/fixture.ts";

const dir = mkdtempSync(join(tmpdir(), "cs-harvest-cli-"));
const HARVEST = [
  "sae",
  "harvest",
  "--hook",
  "blocks.1.hook_resid_pre",
  "--corpus",
  "stories.jsonl",
  "--context",
  "24",
  "--tokens",
  "400",
  "--chunk-texts",
  "2",
];

before(async () => {
  const stories = readFileSync(join(REPO_ROOT, "models/stories260k-saes/stories-140k-seed0.jsonl"), "utf8");
  writeFileSync(join(dir, "stories.jsonl"), `${stories.split("\n").slice(0, 30).join("\n")}\n`);
  for (const i of [0, 2]) {
    const r = await runCli([...HARVEST, "--shard", `${i}/3`, "--out", `h/${i}`], {}, dir);
    assert.equal(r.code, 0, r.stderr);
  }
});
after(() => rmSync(dir, { recursive: true, force: true }));

describe("sae train --activations on the command line", () => {
  test("a missing shard is named, with how to make it; nothing is written", async () => {
    const r = await runCli(["sae", "train", "--activations", "h", "--d-sae", "32", "--out", "sae"], {}, dir);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /circuitscope: error: Missing activation shard 1\/3 .*--shard 1\/3/);
    assert.equal(existsSync(join(dir, "sae")), false);
  });

  test("the harvest's own settings are refused beside --activations", async () => {
    const r = await runCli(
      [
        "sae",
        "train",
        "--activations",
        "h",
        "--hook",
        "blocks.0.hook_resid_pre",
        "--d-sae",
        "32",
        "--out",
        "sae",
      ],
      {},
      dir,
    );
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /--hook has no effect with --activations/);
  });

  test("a directory that is no harvest is named", async () => {
    const r = await runCli(["sae", "train", "--activations", ".", "--d-sae", "32", "--out", "sae"], {}, dir);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /is not an activation harvest/);
  });
});

describe("sae harvest on the command line", () => {
  test("a bad shard and an existing shard without --resume are refused before the model loads", async () => {
    const bad = await runCli([...HARVEST, "--shard", "3/3", "--out", "h/3"], {}, dir);
    assert.notEqual(bad.code, 0);
    assert.match(bad.stderr, /Bad shard "3\/3"/);
    const again = await runCli([...HARVEST, "--shard", "0/3", "--out", "h/0"], {}, dir);
    assert.notEqual(again.code, 0);
    assert.match(again.stderr, /already holds an activation harvest\. Pass --resume/);
    const other = await runCli([...HARVEST, "--shard", "1/3", "--out", "h/0", "--resume"], {}, dir);
    assert.notEqual(other.code, 0);
    assert.match(other.stderr, /it is shard 0\/3, not 1\/3/);
  });

  test("slurm sae harvest needs the training job's options, and refuses the ones it sets", async () => {
    const none = await runCli(["slurm", ...HARVEST, "--shards", "3", "--out", "w1"], {}, dir);
    assert.notEqual(none.code, 0);
    assert.match(none.stderr, /needs its sae train options: add --merge-options/);
    const taken = await runCli(
      ["slurm", ...HARVEST, "--shards", "3", "--out", "w2", "--merge-options", "--d-sae 32 --out x"],
      {},
      dir,
    );
    assert.notEqual(taken.code, 0);
    assert.match(taken.stderr, /--merge-options: --out is set by circuitscope/);
    const typo = await runCli(
      ["slurm", ...HARVEST, "--shards", "3", "--out", "w3", "--merge-options", "--d-sea 32"],
      {},
      dir,
    );
    assert.notEqual(typo.code, 0);
    assert.match(typo.stderr, /sae train does not take --d-sea/);
    assert.equal(existsSync(join(dir, "w3")), false, "nothing written");
  });
});
