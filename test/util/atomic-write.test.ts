import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { liveTempPaths, TEMP_MARK, writeAtomically, writeFileAtomic } from "../../src/util/atomic-write.ts";
import { REPORT_MARKER, reportDirState, writeReportDir } from "../../src/util/report-dir.ts";
import { firstInvalidUtf8Offset } from "../../src/util/text-file.ts";
import { REPO_ROOT } from "../helpers/fixture.ts";

const root = mkdtempSync(join(tmpdir(), "cs-atomic-"));
after(() => rmSync(root, { recursive: true, force: true }));

test("writeFileAtomic replaces the file and leaves no temporary file", () => {
  const dir = join(root, "a");
  writeFileAtomic(join(dir, "x.txt"), "one");
  writeFileAtomic(join(dir, "x.txt"), "two");
  assert.equal(readFileSync(join(dir, "x.txt"), "utf8"), "two");
  assert.deepEqual(readdirSync(dir), ["x.txt"]);
  assert.deepEqual(liveTempPaths(), []);
});

test("a build that fails leaves the earlier output untouched and no temporary path", async () => {
  const dir = join(root, "b");
  mkdirSync(dir);
  writeFileSync(join(dir, "out.json"), "earlier");
  await assert.rejects(
    writeAtomically(join(dir, "out.json"), (tmp) => {
      writeFileSync(tmp, "half");
      throw new Error("disk full halfway");
    }),
    /disk full halfway/,
  );
  assert.equal(readFileSync(join(dir, "out.json"), "utf8"), "earlier");
  assert.deepEqual(readdirSync(dir), ["out.json"]);
  assert.deepEqual(liveTempPaths(), []);
});

test("writeReportDir replaces only an empty directory or an earlier report (with overwrite)", async () => {
  const build = (text: string) => (tmp: string) => {
    mkdirSync(tmp, { recursive: true });
    writeFileSync(join(tmp, "report.html"), text);
  };
  const opts = { flag: "--out", command: "test" };
  const mine = join(root, "mine");
  mkdirSync(mine);
  writeFileSync(join(mine, "thesis.tex"), "years of work");
  await assert.rejects(
    writeReportDir(mine, { ...opts, overwrite: true }, build("r")),
    /not a circuitscope report/,
  );
  assert.deepEqual(readdirSync(mine), ["thesis.tex"]);

  const empty = join(root, "empty");
  mkdirSync(empty);
  await writeReportDir(empty, opts, build("first"));
  assert.equal(reportDirState(empty), "report");
  assert.deepEqual(readdirSync(empty).sort(), [REPORT_MARKER, "report.html"].sort());
  await assert.rejects(writeReportDir(empty, opts, build("second")), /add --overwrite/);
  await writeReportDir(empty, { ...opts, overwrite: true }, build("second"));
  assert.equal(readFileSync(join(empty, "report.html"), "utf8"), "second");
  // A marker with another schema is not ours.
  writeFileSync(join(mine, REPORT_MARKER), JSON.stringify({ schema: "something-else/1" }));
  assert.equal(reportDirState(mine), "other");
  assert.deepEqual(
    readdirSync(root).filter((n) => n.includes(TEMP_MARK)),
    [],
  );
});

test("SIGINT during a write removes the temporary path and exits 130", async () => {
  const dir = join(root, "signal");
  mkdirSync(dir);
  const script = `
    import { writeAtomically } from ${JSON.stringify(join(REPO_ROOT, "src/util/atomic-write.ts"))};
    import { writeFileSync } from "node:fs";
    await writeAtomically(${JSON.stringify(join(dir, "big.bin"))}, async (tmp) => {
      writeFileSync(tmp, Buffer.alloc(1 << 20));
      console.log("writing");
      await new Promise(() => setInterval(() => {}, 1000)); // a long write: never finishes on its own
    });`;
  const child = spawn(process.execPath, ["--import", "tsx", "--input-type=module", "-e", script], {
    cwd: REPO_ROOT,
    stdio: ["ignore", "pipe", "pipe"],
  });
  const exited = new Promise<number | null>((resolve) => child.on("close", (code) => resolve(code)));
  try {
    // Exiting before the write has begun fails here instead of hanging the suite.
    const began = new Promise<"began">((resolve) => child.stdout.once("data", () => resolve("began")));
    assert.equal(await Promise.race([began, exited]), "began");
    assert.equal(
      readdirSync(dir).filter((n) => n.includes(TEMP_MARK)).length,
      1,
      "the temporary file exists",
    );
    child.kill("SIGINT");
    const code = await Promise.race([exited, sleep(30_000).then(() => "timeout")]);
    assert.equal(code, 130);
    assert.deepEqual(readdirSync(dir), []);
  } finally {
    child.kill("SIGKILL");
  }
});

test("firstInvalidUtf8Offset finds an injected invalid byte in valid multilingual text", () => {
  const pieces = ["a", "é", "ß", "中", "😀", " ", "\n", "ő"];
  let seed = 7;
  const rand = (n: number) => {
    seed = (seed * 1103515245 + 12345) % 2 ** 31;
    return seed % n;
  };
  for (let trial = 0; trial < 200; trial++) {
    const text = Array.from({ length: 1 + rand(40) }, () => pieces[rand(pieces.length)]).join("");
    const bytes = Buffer.from(text, "utf8");
    // Insert the bad byte at a character boundary (0xFF never occurs in UTF-8).
    const chars = [...text];
    const at = rand(chars.length + 1);
    const offset = Buffer.byteLength(chars.slice(0, at).join(""), "utf8");
    const bad = Buffer.concat([bytes.subarray(0, offset), Buffer.from([0xff]), bytes.subarray(offset)]);
    assert.equal(firstInvalidUtf8Offset(bad), offset, JSON.stringify(text));
    // A multi-byte character cut short is reported at its first byte.
    const lastChar = chars.at(-1)!;
    if (Buffer.byteLength(lastChar) > 1) {
      const cut = bytes.subarray(0, bytes.length - 1);
      assert.equal(firstInvalidUtf8Offset(cut), bytes.length - Buffer.byteLength(lastChar));
    }
  }
});
