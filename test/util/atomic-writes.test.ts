/**
 * Writers that must never leave a half-written file: a write that fails part-way through (here: the
 * file-size limit of a child process, standing in for a full disk) leaves no file at the target, keeps
 * whatever was there before, and leaves no temporary file behind.
 */
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import fs, {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { syncBuiltinESMExports } from "node:module";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { readIndexState, readManifest } from "../../src/neurons/index-store.ts";
import { TEMP_MARK } from "../../src/util/atomic-write.ts";
import { REPO_ROOT } from "../helpers/fixture.ts";
import { writeSmallCheckpoint } from "../helpers/small-index.ts";

const root = mkdtempSync(join(tmpdir(), "cs-atomic-"));
after(() => rmSync(root, { recursive: true, force: true }));

/** Runs a writer in a child limited to 64 KiB files (SIGXFSZ ignored, so writes fail with EFBIG). */
function writeUnderLimit(writer: "safetensors" | "index" | "report", target: string): string | null {
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

test("neuron index: a first checkpoint that fails part-way leaves no data file, no manifest, no temp file", () => {
  const dir = join(root, "index");
  assert.equal(writeUnderLimit("index", dir), "EFBIG");
  assert.deepEqual(leftovers(dir), []);
  // The failing file (the large context tokens) is not there at all, half-written or otherwise.
  assert.deepEqual(
    readdirSync(dir).filter((f) => f.startsWith("context-tokens")),
    [],
  );
  assert.throws(() => readManifest(dir), /is not a neuron index/);
  // The files written before the failure are removed too: no manifest names them.
  assert.deepEqual(readdirSync(dir), []);
});

test("report.html (writeHtmlReport): a write that fails part-way keeps the earlier report and leaves no temp file", () => {
  const dir = join(root, "html");
  mkdirSync(dir);
  const target = join(dir, "report.html");
  assert.equal(writeUnderLimit("report", target), "EFBIG");
  assert.deepEqual(readdirSync(dir), [], "no file, half-written or temporary");
  writeFileSync(target, "<!doctype html><p>the earlier report</p>");
  assert.equal(writeUnderLimit("report", target), "EFBIG");
  assert.equal(readFileSync(target, "utf8"), "<!doctype html><p>the earlier report</p>");
  assert.deepEqual(readdirSync(dir), ["report.html"]);
});

test("neuron index: each file of a checkpoint failing on its own (manifest included) keeps the previous checkpoint whole", () => {
  const names = [
    "top-values",
    "top-contexts",
    "top-positions",
    "histogram",
    "positive",
    "context-ids",
    "context-offsets",
    "context-tokens",
    "manifest",
  ];
  for (const failing of names) {
    const dir = join(root, `checkpoint-${failing}`);
    writeSmallCheckpoint(dir, 1);
    const before = new Map(readdirSync(dir).map((f) => [f, readFileSync(join(dir, f))]));
    // A full disk on that one file: half of it is written, then ENOSPC.
    const original = fs.writeFileSync;
    fs.writeFileSync = ((path: fs.PathOrFileDescriptor, data: string | NodeJS.ArrayBufferView) => {
      const name = String(path).split("/").at(-1)!;
      if (name.replace(TEMP_MARK, "").startsWith(`${failing}.`)) {
        const bytes =
          typeof data === "string"
            ? Buffer.from(data)
            : Buffer.from(data.buffer, data.byteOffset, data.byteLength);
        original(path, bytes.subarray(0, bytes.length >> 1));
        throw Object.assign(new Error(`ENOSPC: no space left on device, write '${path}'`), {
          code: "ENOSPC",
          path,
        });
      }
      original(path, data);
    }) as typeof fs.writeFileSync;
    syncBuiltinESMExports();
    try {
      assert.throws(() => writeSmallCheckpoint(dir, 2), { code: "ENOSPC" }, failing);
    } finally {
      fs.writeFileSync = original;
      syncBuiltinESMExports();
    }
    // Exactly the previous checkpoint's files, byte for byte: nothing half-written, nothing orphaned.
    const after = new Map(readdirSync(dir).map((f) => [f, readFileSync(join(dir, f))]));
    assert.deepEqual([...after.keys()].sort(), [...before.keys()].sort(), failing);
    for (const [f, bytes] of before) assert.ok(after.get(f)!.equals(bytes), `${failing}: ${f}`);
    assert.equal(readIndexState(dir).manifest.progress.tokens, 1, failing);
  }
});
