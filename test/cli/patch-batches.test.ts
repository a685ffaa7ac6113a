/**
 * `patch` with a batch of pairs: position-by-position targets refuse pairs of different token lengths
 * (issue 28.5), and head_all on a grouped-query model lists a shared key/value head once (issue 28.6);
 * a batch with no clean − corrupted gap prints the fraction restored as undefined, not NaN.
 */
import assert from "node:assert/strict";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { cliResult, spawnCli } from "../helpers/cli.ts";
import { FIXTURE_DIR, REPO_ROOT } from "../helpers/fixture.ts";
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

test("a batch whose pairs cancel (a pair and its swap): the fraction restored is undefined, printed as such, never NaN or ±Infinity; changes in logits instead, and no page of NaNs", async () => {
  const [A, B] = ["We're helping our friend while they", "You're helping your mother while they"];
  const tiny = ["--model", FIXTURE_DIR, "--answer", "'re", "--wrong", " are", "-t", "head_z"];
  const run = async (args: string[]) => {
    const child = spawnCli(["patch", ...tiny, ...args]);
    try {
      return await cliResult(child);
    } finally {
      child.kill("SIGKILL");
    }
  };
  const dir = mkdtempSync(join(tmpdir(), "cs-patch-gap-"));
  after(() => rmSync(dir, { recursive: true, force: true }));
  const html = join(dir, "page.html");
  const both = ["--clean", A, "--corrupted", B, "--clean", B, "--corrupted", A];
  const out = await run([...both, "--per-prompt", "--html", html]);
  assert.doesNotMatch(out.stdout, /NaN|Infinity/);
  assert.match(out.stdout, /Fraction restored: undefined \(clean = corrupted/);
  assert.match(out.stderr, /no page written to .*undefined \(clean = corrupted\)/);
  assert.notEqual(out.code, 0, "the page asked for was not written");
  assert.equal(existsSync(html), false);
  // Each listed change is the batch mean of the two pairs' patched logit differences minus the corrupted
  // one: recomputed from each pair run on its own (each has a gap, so its fraction is defined).
  const single = async (clean: string, corrupted: string) => {
    const r = await run(["--clean", clean, "--corrupted", corrupted, "--json"]);
    assert.equal(r.code, 0, r.stderr);
    const j = JSON.parse(r.stdout) as { clean: number; corrupted: number; values: number[][] };
    return j.values.map((row) => row.map((v) => j.corrupted + v * (j.clean - j.corrupted)));
  };
  const [ab, ba] = [await single(A, B), await single(B, A)];
  const corrupted = Number(/corrupted (-?\d+\.\d+)/.exec(out.stdout)?.[1]);
  const rows = [...out.stdout.matchAll(/^ {2}L(\d+), H(\d+) +([+−]?\d+\.\d+)$/gm)];
  assert.equal(rows.length, 12);
  for (const [, l, h, text] of rows) {
    const want = (ab[Number(l)][Number(h)] + ba[Number(l)][Number(h)]) / 2 - corrupted;
    assert.ok(Math.abs(Number(text.replace("−", "-")) - want) < 2e-4, `L${l}H${h}: ${text} vs ${want}`);
  }
  // Per prompt, each pair has its own gap: fractions are defined there.
  assert.match(
    out.stdout,
    /Prompt 0: clean .*\n {2}L\d+, H\d+ +logit diff +-?\d+\.\d+ {2}fraction restored +-?\d+\.\d{4}\n/,
  );
});
