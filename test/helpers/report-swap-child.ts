/**
 * Child process for the report-swap tests: writes report generation G (nested files whose text names
 * the generation) to a report directory with writeReportDir, optionally killing itself with SIGKILL just
 * before its K-th file-system change (rename, remove, write, mkdir), so that every interleaving of a
 * kill -9 with the swap can be visited. Prints the number of changes made when it was not killed.
 *
 *   report-swap-child.ts <dir> <generation> <kill-before-change K, 0 for never> [loop]
 *
 * With `loop`, writes generations G, G+1, ... for ever (for kills at random moments from the parent).
 */
import fs, { mkdirSync, writeFileSync } from "node:fs";
import { syncBuiltinESMExports } from "node:module";
import { join } from "node:path";

const [dir, generation, killAt, loop] = process.argv.slice(2);
let changes = 0;
for (const name of ["renameSync", "rmSync", "writeFileSync", "mkdirSync"] as const) {
  const original = fs[name] as (...args: unknown[]) => unknown;
  (fs as unknown as Record<string, unknown>)[name] = (...args: unknown[]) => {
    changes++;
    if (changes === Number(killAt)) process.kill(process.pid, "SIGKILL");
    return original(...args);
  };
}
syncBuiltinESMExports();
const { writeReportDir } = await import("../../src/util/report-dir.ts");

/** The files of one generation (24, in two directories): enough that a swap is not instant. */
const REPORT_FILES = Array.from({ length: 24 }, (_, i) => (i % 3 === 0 ? `figures/f${i}.svg` : `p${i}.txt`));

for (let g = Number(generation); ; g++) {
  await writeReportDir(dir, { overwrite: true, flag: "--out", command: "swap-test" }, (tmp) => {
    mkdirSync(join(tmp, "figures"), { recursive: true });
    for (const f of REPORT_FILES) writeFileSync(join(tmp, f), `generation ${g} ${f}`);
  });
  if (loop !== "loop") break;
}
console.log(JSON.stringify({ changes }));
