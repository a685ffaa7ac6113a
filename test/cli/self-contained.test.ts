/** The repository stands on its own: no tracked file reaches for a sibling checkout or this machine's paths. */
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { REPO_ROOT } from "../helpers/fixture.ts";

// Spelled in pieces so that this file does not contain what it looks for.
const NEEDLES = [["..", "shared"].join("/"), "/wo" + "rk/", "/ho" + "me/"];

test("no tracked file names the sibling shared folder or an absolute path of a particular machine", () => {
  const files = execFileSync("git", ["ls-files", "-z"], { cwd: REPO_ROOT, encoding: "utf8" })
    .split("\0")
    .filter((f) => f && f !== ".ci/run");
  assert.ok(files.length > 100, "git lists the repository's files");
  const offenders: string[] = [];
  for (const file of files) {
    let text: string;
    try {
      text = readFileSync(join(REPO_ROOT, file), "utf8");
    } catch {
      continue; // deleted in the working tree
    }
    if (text.includes("\0")) continue; // binary
    for (const needle of NEEDLES) {
      if (text.includes(needle)) offenders.push(`${file}: ${needle}`);
    }
  }
  assert.deepEqual(offenders, []);
});
