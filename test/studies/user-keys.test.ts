/**
 * Names a user chooses (group names, corpus names) are keys of Maps, never of plain objects, where
 * "__proto__", "constructor", "toString" or "hasOwnProperty" would hit Object.prototype instead.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { openCorpus } from "../../src/corpus/sources.ts";
import type { StudyResults } from "../../src/studies/results.ts";
import { applySlice } from "../../src/studies/stage.ts";

const NAMES = ["__proto__", "constructor", "toString", "hasOwnProperty"];

test("a stage's per-group numbers reach groups named __proto__, constructor, toString, hasOwnProperty", () => {
  const res = {
    groups: NAMES.map((name) => ({ name, n: 2 })),
    focusGroup: "__proto__",
    focus: { name: "__proto__", n: 2 },
  } as unknown as StudyResults;
  const slice = new Map(NAMES.map((name, i) => [name, { analysed: i % 2 === 0, normalised: i > 1 }]));
  applySlice(res, { groups: slice });
  for (const [i, g] of res.groups.entries()) {
    assert.equal(g.analysed, i % 2 === 0, g.name);
    assert.equal(g.normalised, i > 1, g.name);
    assert.equal(Object.getPrototypeOf(g), Object.prototype, `${g.name}: the prototype is untouched`);
  }
  assert.equal(res.focus.analysed, true, "the focus group (__proto__) got its fields too");
  assert.throws(() => applySlice(res, { groups: new Map([["valueOf", {}]]) }), /unknown group valueOf/);
});

test("a corpus named like an Object.prototype member is an unknown corpus, not a built-in", () => {
  for (const name of NAMES)
    assert.throws(
      () => openCorpus(name),
      new RegExp(`Unknown corpus "${name}": not a built-in corpus \\(nlp-corpus, `),
    );
});

test("study custom runs end to end with groups named __proto__, constructor, toString, hasOwnProperty", async () => {
  const { mkdtempSync, readFileSync, rmSync, writeFileSync } = await import("node:fs");
  const { tmpdir } = await import("node:os");
  const { join } = await import("node:path");
  const { runCli } = await import("../helpers/cli.ts");
  const { REPO_ROOT } = await import("../helpers/fixture.ts");
  const dir = mkdtempSync(join(tmpdir(), "cs-user-keys-"));
  try {
    // The docs' gender pairs, each group renamed after a member of Object.prototype.
    const pairs = readFileSync(join(REPO_ROOT, "docs/circuits-gender-pairs.jsonl"), "utf8")
      .trim()
      .split("\n")
      .slice(0, 16)
      .map((line, i) => JSON.stringify({ ...JSON.parse(line), group: NAMES[i % NAMES.length] }));
    writeFileSync(join(dir, "pairs.jsonl"), `${pairs.join("\n")}\n`);
    const r = await runCli(
      ["study", "custom", "--prompts", "pairs.jsonl", "--model", "stories260k", "--out", "rep", "--quick"],
      {},
      dir,
    );
    assert.equal(r.code, 0, r.stderr);
    const results = JSON.parse(readFileSync(join(dir, "rep", "results.json"), "utf8")) as StudyResults;
    assert.deepEqual(
      results.groups.map((g) => g.name),
      NAMES,
    );
    assert.ok(readFileSync(join(dir, "rep", "report.html"), "utf8").includes("hasOwnProperty"));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
