/**
 * Writers that must never leave a half-written file: a write that fails part-way through (here: the
 * file-size limit of a child process, standing in for a full disk) leaves no file at the target, keeps
 * whatever was there before, and leaves no temporary file behind.
 */
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { readManifest } from "../../src/neurons/index-store.ts";
import { REPO_ROOT } from "../helpers/fixture.ts";

const root = mkdtempSync(join(tmpdir(), "cs-atomic-"));
after(() => rmSync(root, { recursive: true, force: true }));

/** Runs a writer in a child limited to 64 KiB files (SIGXFSZ ignored, so writes fail with EFBIG). */
function writeUnderLimit(writer: "safetensors" | "index", target: string): string | null {
  const script = join(REPO_ROOT, "test/helpers/limited-writer.ts");
  const out = execFileSync(
    "sh",
    [
      "-c",
      'trap "" XFSZ; ulimit -f 128; exec "$0" --import tsx "$@"',
      process.execPath,
      script,
      writer,
      target,
    ],
    { cwd: REPO_ROOT, encoding: "utf8" },
  );
  return JSON.parse(out.trim().split("\n").at(-1)!).error;
}

/** Names in dir that look like leftovers of an interrupted write. */
function leftovers(dir: string): string[] {
  return readdirSync(dir).filter((f) => /tmp|\.part/i.test(f));
}

test("writeSafetensors: a write that fails part-way leaves no file and no temp file", () => {
  const dir = join(root, "st-fresh");
  mkdirSync(dir);
  const target = join(dir, "model.safetensors");
  assert.equal(writeUnderLimit("safetensors", target), "EFBIG");
  assert.equal(existsSync(target), false);
  assert.deepEqual(readdirSync(dir), []);
});

test("writeSafetensors: a write that fails part-way keeps the file that was there", () => {
  const dir = join(root, "st-existing");
  mkdirSync(dir);
  const target = join(dir, "model.safetensors");
  writeFileSync(target, "the user's previous file");
  assert.equal(writeUnderLimit("safetensors", target), "EFBIG");
  assert.equal(readFileSync(target, "utf8"), "the user's previous file");
  assert.deepEqual(readdirSync(dir), ["model.safetensors"]);
});

test("neuron index: a checkpoint that fails part-way leaves no partial data file, no manifest, no temp file", () => {
  const dir = join(root, "index");
  assert.equal(writeUnderLimit("index", dir), "EFBIG");
  assert.deepEqual(leftovers(dir), []);
  // The failing file (the large context tokens) is not there at all, half-written or otherwise.
  assert.deepEqual(
    readdirSync(dir).filter((f) => f.startsWith("context-tokens")),
    [],
  );
  assert.throws(() => readManifest(dir), /is not a neuron index/);
  // The files written before the failure are whole: the top-values file holds 2 neurons x top-1 float32.
  const values = readdirSync(dir).find((f) => f.startsWith("top-values"));
  assert.ok(values);
  assert.equal(readFileSync(join(dir, values)).length, 2 * 4);
});
