/**
 * `patch` with a batch of pairs: position-by-position targets refuse pairs of different token lengths
 * (issue 28.5), and head_all on a grouped-query model lists a shared key/value head once (issue 28.6).
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { test } from "node:test";
import { cliResult, spawnCli } from "../helpers/cli.ts";
import { REPO_ROOT } from "../helpers/fixture.ts";
import { referenceEncode } from "../helpers/llama-reference.ts";

const STORIES = join(REPO_ROOT, "models/stories260k");
const M = ["--model", "stories260k", "--answer", " she", "--wrong", " he"];
const LONG = [
  "--clean",
  "Once upon a time, Lily went home. Then",
  "--corrupted",
  "Once upon a time, Tim went home. Then",
];
const SHORT = ["--clean", "Lily went home. Then", "--corrupted", "Tim went home. Then"];
const [longN, shortN] = [LONG[1], SHORT[1]].map((t) => referenceEncode(STORIES, t).length);

async function patch(args: string[]) {
  const child = spawnCli(["patch", ...M, ...args]);
  try {
    return await cliResult(child);
  } finally {
    child.kill("SIGKILL");
  }
}

for (const [what, args] of [
  ["--target resid_pre", ["-t", "resid_pre"]],
  ["--by-pos", ["-t", "head_z", "--by-pos"]],
  ["--pos", ["-t", "neurons", "--layer", "1", "--pos", "2"]],
] as const) {
  test(`${what} with pairs of different token lengths is refused, naming each pair's length`, async () => {
    assert.notEqual(longN, shortN);
    const out = await patch([...LONG, ...SHORT, ...args, "--json"]);
    assert.notEqual(out.code, 0);
    assert.equal(out.stdout, "");
    assert.match(out.stderr, new RegExp(`pair 0: ${longN} tokens, pair 1: ${shortN} tokens`));
    assert.match(out.stderr, new RegExp(`${what} patches one position at a time`));
    assert.match(out.stderr, /head_z, head_q.*or neurons without --pos/);
  });
}

test("a target over all positions takes pairs of different lengths (their effects are per head, not per position)", async () => {
  const out = await patch([...LONG, ...SHORT, "-t", "head_z", "--json"]);
  assert.equal(out.code, 0, out.stderr);
  assert.deepEqual(JSON.parse(out.stdout).axes, ["layer", "head"]);
});

test("head_all on stories260k: each key/value head's k and v effect is listed once, named with the query heads sharing it", async () => {
  const out = await patch([...SHORT, "-t", "head_all"]);
  assert.equal(out.code, 0, out.stderr);
  const rows = out.stdout.split("\n").filter((l) => /^ {2}[zqkv]|^ {2}pattern/.test(l));
  assert.equal(rows.length, 15);
  const names = rows.map((l) => l.trim().split(/\s{2,}/)[0]);
  assert.equal(new Set(names).size, names.length, "no effect listed twice");
  const kv = names.filter((n) => /^[kv], /.test(n));
  assert.ok(kv.length > 0, "some k/v effect is among the largest");
  for (const n of kv) {
    const m = /^[kv], L\d, KV(\d) \(H(\d)\+H(\d)\)$/.exec(n);
    assert.ok(m, `k/v rows name the key/value head and its query heads: ${n}`);
    assert.deepEqual([Number(m[2]), Number(m[3])], [2 * Number(m[1]), 2 * Number(m[1]) + 1]);
  }
  assert.match(out.stdout, /2 query heads share each key\/value head/);
  const json = await patch([...SHORT, "-t", "head_all", "--json"]);
  assert.deepEqual(JSON.parse(json.stdout).sharedKvHeads.groups, [
    [0, 1],
    [2, 3],
    [4, 5],
    [6, 7],
  ]);
});
