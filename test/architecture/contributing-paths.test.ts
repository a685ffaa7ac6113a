/**
 * CONTRIBUTING.md names files and folders; each must exist, so the recipes cannot drift from the tree (as
 * layering.test.ts holds the imports). A `<name>` placeholder stands for a new file: the folder before it
 * must exist. Its layer list must be the one layering.test.ts enforces.
 */
import assert from "node:assert/strict";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { REPO_ROOT } from "../helpers/fixture.ts";
import { LAYERS } from "./layering.test.ts";

const TEXT = readFileSync(join(REPO_ROOT, "CONTRIBUTING.md"), "utf8");

/** Paths in `code spans` under the repository's top-level folders (src/, test/, bench/, docs/, scripts/). */
export function namedPaths(markdown: string): string[] {
  const out = new Set<string>();
  for (const m of markdown.matchAll(/`([^`\s]+)`/g)) {
    const p = m[1].replace(/[.,;:]+$/, "");
    if (/^(src|test|bench|docs|scripts)\//.test(p)) out.add(p);
  }
  return [...out];
}

/** The part of a path that must exist: all of it, or the folder before its first `<placeholder>`. */
function mustExist(path: string): string {
  const i = path.indexOf("<");
  return i < 0 ? path : path.slice(0, path.lastIndexOf("/", i) + 1);
}

test("every path CONTRIBUTING.md names exists", () => {
  const paths = namedPaths(TEXT);
  assert.ok(paths.length >= 40, `found only ${paths.length} paths: is the scan still reading them?`);
  const missing = paths.filter((p) => !existsSync(join(REPO_ROOT, mustExist(p))));
  assert.deepEqual(missing, []);
});

test("the scan reads code spans, placeholders and trailing punctuation", () => {
  assert.deepEqual(namedPaths("`src/a.ts`, `src/<name>/spec.ts`. `npm ci` `docs/x.md`, `bench/`"), [
    "src/a.ts",
    "src/<name>/spec.ts",
    "docs/x.md",
    "bench/",
  ]);
  assert.equal(mustExist("src/studies/<name>/spec.ts"), "src/studies/");
  assert.equal(mustExist("src/model/mlp.ts"), "src/model/mlp.ts");
});

test("CONTRIBUTING.md's layer list is the order layering.test.ts enforces", () => {
  const line = TEXT.match(/`(util < [^`]+)`/);
  assert.ok(line, "CONTRIBUTING.md lists the layers as `util < ... < cli`");
  assert.deepEqual(
    line[1].split(" < "),
    LAYERS.map((l) => l.join(" = ")),
  );
});
