import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { test } from "node:test";
import { fileURLToPath } from "node:url";

const onGlibc =
  process.platform === "linux" &&
  Boolean(
    (process.report.getReport() as { header?: { glibcVersionRuntime?: string } }).header?.glibcVersionRuntime,
  );

/**
 * In a fresh process: raise glibc's mmap threshold (free one 9 MB block), allocate 20 heap blocks of 8 MB
 * with small live ones between them, free the big ones. glibc keeps them (the live blocks stop the heap
 * from shrinking); returnFreedMemory must give them back.
 */
const SCRIPT = `
import { readFileSync } from "node:fs";
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import { returnFreedMemory } from ${JSON.stringify(fileURLToPath(new URL("../../src/util/return-freed-memory.ts", import.meta.url)))};
setFlagsFromString("--expose-gc");
const gc = runInNewContext("gc");
const full = () => { gc(); gc(); };
const rss = () => Number(readFileSync("/proc/self/status", "utf8").match(/VmRSS:\\s+(\\d+)/)[1]) / 1024;
full();
const baseline = rss();
let a = new Float32Array(9 << 18); a.fill(1); a = null; full();
const keep = [];
let many = [];
for (let i = 0; i < 20; i++) {
  const x = new Float32Array(2 << 20); x.fill(1); many.push(x);
  const k = new Float32Array(1 << 16); k.fill(1); keep.push(k);
}
many = null; full();
const retained = rss() - baseline;
returnFreedMemory();
const left = rss() - baseline;
console.log(JSON.stringify({ retained, left, kept: keep.length }));
`;

test("memory the C library kept after large frees goes back to the system", { skip: !onGlibc }, () => {
  const out = execFileSync(process.execPath, ["--import", "tsx", "--input-type=module", "-e", SCRIPT], {
    encoding: "utf8",
  });
  const { retained, left } = JSON.parse(out.trim().split("\n").pop()!) as { retained: number; left: number };
  assert.ok(retained > 40, `the scenario must leave freed memory in the heap (it left ${retained} MB)`);
  assert.ok(left < retained / 2, `after returnFreedMemory ${left} MB of ${retained} MB is still held`);
});
