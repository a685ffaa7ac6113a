/**
 * The report swap never leaves the path without a complete report: a child writing a report with
 * writeReportDir is killed with SIGKILL before each of its file-system changes in turn (every
 * interleaving of a kill -9 with the swap, with rename-exchange and with the two-rename fallback), and at
 * random moments while it rewrites the report in a loop. After each kill the path holds a complete old
 * or new report (the fallback: or the next run puts the old one back), and the next run leaves no
 * leftovers. Also: --overwrite replaces only what circuitscope wrote; mount points are refused up front.
 */
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
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
import { TEMP_MARK } from "../../src/util/atomic-write.ts";
import {
  foreignEntries,
  REPORT_MARKER,
  reportDirProblem,
  tidyReportLeftovers,
  writeReportDir,
} from "../../src/util/report-dir.ts";
import { REPO_ROOT } from "../helpers/fixture.ts";

const root = mkdtempSync(join(tmpdir(), "cs-swap-"));
after(() => rmSync(root, { recursive: true, force: true }));

const CHILD = join(REPO_ROOT, "test/helpers/report-swap-child.ts");
const FILES_PER_REPORT = 24;

/** Runs the swap child to its end (or its self-inflicted SIGKILL). */
function runChild(dir: string, generation: number, killAt: number, env: NodeJS.ProcessEnv = {}) {
  const res = spawnSync(
    process.execPath,
    ["--import", "tsx", CHILD, dir, String(generation), String(killAt)],
    {
      cwd: REPO_ROOT,
      encoding: "utf8",
      env: { ...process.env, ...env },
      timeout: 60_000,
      killSignal: "SIGKILL",
    },
  );
  assert.ok(
    res.status === 0 || res.signal === "SIGKILL",
    `child: ${res.status} ${res.signal}\n${res.stderr}`,
  );
  return res;
}

/** The generation of the complete report at `dir`; fails if it is absent, partial or mixed. */
function completeGeneration(dir: string): number {
  assert.ok(existsSync(dir), `${dir} is missing`);
  const marker = JSON.parse(readFileSync(join(dir, REPORT_MARKER), "utf8"));
  assert.equal(marker.building, undefined, "a finished report, not one being built");
  assert.equal(marker.files.length, FILES_PER_REPORT);
  assert.deepEqual(foreignEntries(dir), [], "nothing beyond the listed files");
  const generations = new Set<number>(
    marker.files.map((f: string) => {
      const m = /^generation (\d+) (.+)$/.exec(readFileSync(join(dir, f), "utf8"));
      assert.ok(m && m[2] === f, `${f} is whole`);
      return Number(m[1]);
    }),
  );
  assert.equal(generations.size, 1, "one generation, not a mix");
  return [...generations][0];
}

const leftovers = (parent: string) => readdirSync(parent).filter((n) => n.includes(TEMP_MARK));

for (const mode of ["rename-exchange", "two-rename fallback"] as const) {
  test(`report swap (${mode}): a kill -9 before any file-system change leaves a complete old or new report`, () => {
    const env = mode === "rename-exchange" ? {} : { CIRCUITSCOPE_NO_RENAME_EXCHANGE: "1" };
    const parent = join(root, mode.replace(/\W+/g, "-"));
    const dir = join(parent, "report");
    mkdirSync(parent);
    const first = runChild(dir, 1, 0, env);
    assert.equal(first.status, 0, first.stderr);
    let generation = 1;
    let killedSomewhere = 0;
    for (let k = 1; ; k++) {
      const res = runChild(dir, generation + 1, k, env);
      if (res.signal === "SIGKILL") {
        killedSomewhere++;
        // The fallback may die between its renames: the old report then waits, whole, beside the path.
        if (!existsSync(dir)) {
          assert.equal(mode, "two-rename fallback", `kill before change ${k}: no report at the path`);
          assert.ok(tidyReportLeftovers(dir).restored, `kill before change ${k}: the next run restores it`);
        }
      }
      const now = completeGeneration(dir);
      assert.ok(now === generation || now === generation + 1, `kill before change ${k}: generation ${now}`);
      // The next run tidies what the killed one left, and writes a complete report.
      const next = runChild(dir, now + 1, 0, env);
      assert.equal(next.status, 0, next.stderr);
      assert.equal(completeGeneration(dir), now + 1);
      assert.deepEqual(leftovers(parent), [], `kill before change ${k}: leftovers`);
      generation = now + 1;
      if (res.status === 0) break; // k passed the last change: every interleaving was visited
    }
    assert.ok(killedSomewhere > 40, `kills landed at ${killedSomewhere} points`);
  });
}

test("report swap: kill -9 at random moments while the report is rewritten in a loop", async () => {
  const parent = join(root, "random");
  const dir = join(parent, "report");
  mkdirSync(parent);
  assert.equal(runChild(dir, 1, 0).status, 0);
  let seed = 12345;
  const random = () => {
    seed = (seed * 1103515245 + 12345) % 2 ** 31;
    return seed / 2 ** 31;
  };
  for (let round = 0; round < 12; round++) {
    const child = spawn(
      process.execPath,
      ["--import", "tsx", CHILD, dir, String(100 * (round + 1)), "0", "loop"],
      {
        cwd: REPO_ROOT,
        stdio: "ignore",
      },
    );
    try {
      const exited = new Promise((resolve) => child.on("exit", resolve));
      // After start-up (tsx) the child only writes reports: any moment may fall in a swap.
      await new Promise((resolve) => setTimeout(resolve, 700 + 600 * random()));
      child.kill("SIGKILL");
      await exited;
    } finally {
      child.kill("SIGKILL");
    }
    completeGeneration(dir);
    tidyReportLeftovers(dir);
    assert.deepEqual(leftovers(parent), [], `round ${round}`);
  }
});

test("--overwrite replaces only what circuitscope wrote: a file the user added is named and kept", async () => {
  const dir = join(root, "with-notes");
  const opts = { flag: "--out", command: "test", overwrite: true };
  const build = (text: string) => (tmp: string) => {
    mkdirSync(join(tmp, "figures"));
    writeFileSync(join(tmp, "report.html"), text);
    writeFileSync(join(tmp, "figures", "a.svg"), text);
  };
  await writeReportDir(dir, opts, build("first"));
  assert.deepEqual(JSON.parse(readFileSync(join(dir, REPORT_MARKER), "utf8")).files, [
    "figures/a.svg",
    "report.html",
  ]);
  await writeReportDir(dir, opts, build("second"));
  assert.equal(readFileSync(join(dir, "report.html"), "utf8"), "second");
  for (const added of ["my-notes.txt", "figures/mine.svg"]) {
    writeFileSync(join(dir, added), "the user's");
    assert.match(
      reportDirProblem(dir, opts) ?? "",
      new RegExp(`files circuitscope did not write \\(${added}\\)`),
    );
    await assert.rejects(writeReportDir(dir, opts, build("third")), new RegExp(added));
    assert.equal(readFileSync(join(dir, added), "utf8"), "the user's");
    assert.equal(readFileSync(join(dir, "report.html"), "utf8"), "second");
    rmSync(join(dir, added));
  }
  mkdirSync(join(dir, "drafts"));
  assert.match(
    reportDirProblem(dir, opts) ?? "",
    /\(drafts\)/,
    "an empty directory of the user's counts too",
  );
});

test("leftovers: only dead runs' marked temporary directories are removed; an old report is put back", () => {
  const parent = join(root, "leftovers");
  const dir = join(parent, "out");
  mkdirSync(parent);
  const dead = spawnSync(process.execPath, ["-e", "0"]).pid!; // a process that has exited
  const marked = (name: string, marker: object, files: Record<string, string> = {}) => {
    mkdirSync(join(parent, name));
    writeFileSync(
      join(parent, name, REPORT_MARKER),
      JSON.stringify({ schema: "circuitscope-report/1", ...marker }),
    );
    for (const [f, text] of Object.entries(files)) writeFileSync(join(parent, name, f), text);
  };
  marked(`${TEMP_MARK}out-${dead}-aaaa0001`, { building: true }, { "half.svg": "<s" });
  marked(`${TEMP_MARK}out-${dead}-aaaa0002`, { files: ["report.html"] }, { "report.html": "old" });
  marked(`${TEMP_MARK}out-${process.pid}-aaaa0003`, { building: true }); // a live run's
  marked(`${TEMP_MARK}out-${dead}-aaaa0004`, { files: [] }, { "mine.txt": "not listed" });
  mkdirSync(join(parent, `${TEMP_MARK}out-${dead}-aaaa0005`)); // no marker: not provably ours
  writeFileSync(join(parent, `${TEMP_MARK}out-${dead}-aaaa0005`, "x"), "x");
  const done = tidyReportLeftovers(dir);
  assert.equal(done.restored, join(parent, `${TEMP_MARK}out-${dead}-aaaa0002`));
  assert.deepEqual(done.removed, [join(parent, `${TEMP_MARK}out-${dead}-aaaa0001`)]);
  assert.equal(readFileSync(join(dir, "report.html"), "utf8"), "old");
  assert.deepEqual(
    leftovers(parent).sort(),
    [
      `${TEMP_MARK}out-${dead}-aaaa0004`,
      `${TEMP_MARK}out-${dead}-aaaa0005`,
      `${TEMP_MARK}out-${process.pid}-aaaa0003`,
    ].sort(),
  );
});

test("a mount point at --out is refused before any work, saying to pass a directory inside it", (t) => {
  const dir = join(root, "volume");
  const source = join(root, "volume-source");
  mkdirSync(dir);
  mkdirSync(source);
  const mounted = spawnSync("mount", ["--bind", source, dir]);
  if (mounted.status !== 0) return t.skip("mount --bind is not permitted here");
  try {
    assert.match(
      reportDirProblem(dir, { flag: "--out", overwrite: true }) ?? "",
      /is a mount point \(a volume\).*--out .*volume\/report/,
    );
    assert.equal(reportDirProblem(join(dir, "report"), { flag: "--out" }), null, "inside it is fine");
  } finally {
    spawnSync("umount", [dir]);
  }
});

test("a swap that fails with EBUSY keeps the complete new report beside the path and says where", async () => {
  const dir = join(root, "busy");
  mkdirSync(dir); // empty: replaced by the swap
  const original = fs.renameSync;
  const busy = (from: fs.PathLike, to: fs.PathLike) => {
    // A mount point can be neither renamed away nor replaced.
    if (String(to) === dir || String(from) === dir)
      throw Object.assign(new Error(`EBUSY: rename ${to}`), { code: "EBUSY" });
    original(from, to);
  };
  fs.renameSync = busy;
  process.env.CIRCUITSCOPE_NO_RENAME_EXCHANGE = "1";
  syncBuiltinESMExports();
  try {
    await assert.rejects(
      writeReportDir(dir, { flag: "--out", command: "test" }, (tmp) =>
        writeFileSync(join(tmp, "report.html"), "new"),
      ),
      /cannot be replaced \(EBUSY.*kept at (\S+busy-report-\S+):/,
    );
  } finally {
    fs.renameSync = original;
    delete process.env.CIRCUITSCOPE_NO_RENAME_EXCHANGE;
    syncBuiltinESMExports();
  }
  const kept = readdirSync(root).filter((n) => n.startsWith("busy-report-"));
  assert.equal(kept.length, 1);
  assert.equal(readFileSync(join(root, kept[0], "report.html"), "utf8"), "new");
  assert.deepEqual(leftovers(root), []);
});
