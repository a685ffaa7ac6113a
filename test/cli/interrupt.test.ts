/**
 * Ctrl-C leaves nothing half-written and no temporary files: each writing command is interrupted (SIGINT)
 * at several points of its run, and the output directory must then hold either nothing new or complete
 * outputs, never a temporary or partial file.
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
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
import { setTimeout as sleep } from "node:timers/promises";
import { TEMP_MARK } from "../../src/util/atomic-write.ts";
import { type CliResult, cliResult, finished, runCli, spawnCli } from "../helpers/cli.ts";
import { FIXTURE_DIR, REPO_ROOT } from "../helpers/fixture.ts";

const root = mkdtempSync(join(tmpdir(), "cs-interrupt-"));
after(() => rmSync(root, { recursive: true, force: true }));

/** Anything that looks like a temporary or partial file, anywhere under `dir`. */
function leftovers(dir: string): string[] {
  return readdirSync(dir, { recursive: true })
    .map(String)
    .filter((p) => p.includes(TEMP_MARK) || /\.tmp\b|tmp-\d|\.incomplete$/.test(p));
}

/** Ended by our handler (130), by the default SIGINT action, or finished before the signal (0). */
function assertStoppedCleanly(res: CliResult, what: string): void {
  const ok = res.code === 130 || res.code === 0 || res.signal === "SIGINT";
  assert.ok(ok, `${what}: exit ${res.code} signal ${res.signal}\n${res.stderr}`);
  assert.doesNotMatch(res.stderr, /\n\s+at /, `${what}: no stack trace`);
}

const isCompleteHtml = (path: string) => readFileSync(path, "utf8").trimEnd().endsWith("</html>");

async function runAndInterrupt(args: string[], afterMs: number): Promise<CliResult> {
  const child = spawnCli(args, { cwd: root });
  try {
    const result = cliResult(child);
    await sleep(afterMs);
    child.kill("SIGINT");
    // A process that ignores Ctrl-C is a failure, not a hung test run.
    const hung = setTimeout(() => child.kill("SIGKILL"), 60_000);
    const res = await result;
    clearTimeout(hung);
    assert.notEqual(
      res.signal,
      "SIGKILL",
      `still running 60 s after SIGINT: ${args.join(" ")}\n${res.stderr}`,
    );
    return res;
  } finally {
    child.kill("SIGKILL");
  }
}

/** How long a command takes uninterrupted (so interrupts can be spread over its run). */
async function durationMs(args: string[]): Promise<number> {
  const started = performance.now();
  const res = await finished(spawnCli(args, { cwd: root }));
  assert.equal(res.code, 0, res.stderr);
  return performance.now() - started;
}

const FRACTIONS = [0.5, 0.8, 0.95];

test("study: SIGINT in the write phase leaves the earlier report or the complete new one, and no temporary directory", async () => {
  const out = join(root, "study-report");
  const args = [
    "study",
    "contractions",
    "--model",
    FIXTURE_DIR,
    "--quick",
    "--json",
    "--overwrite",
    "--out",
    out,
  ];
  const first = await finished(spawnCli(args, { cwd: root }));
  assert.equal(first.code, 0, first.stderr);
  const marker = readFileSync(join(out, ".circuitscope-report.json"), "utf8");
  for (let attempt = 0; attempt < 2; attempt++) {
    const child = spawnCli(args, { cwd: root });
    try {
      const result = cliResult(child);
      // Interrupt exactly in the write phase: as soon as the temporary report directory appears.
      let seen = false;
      const started = performance.now();
      while (!seen && child.exitCode === null && performance.now() - started < 60_000) {
        seen = readdirSync(root).some((n) => n.includes(TEMP_MARK));
        if (seen) await sleep(attempt * 15);
        else await sleep(2);
      }
      assert.ok(seen, "the study writes through a temporary directory beside --out");
      child.kill("SIGINT");
      const res = await result;
      assertStoppedCleanly(res, `study attempt ${attempt}`);
      assert.deepEqual(leftovers(root), []);
      // The signal is handled between steps of the write: either before the swap (earlier report kept) or
      // after it (the new report is complete); never in between.
      if (res.code !== 0) assert.equal(res.code, 130, "stopped by circuitscope's handler, which cleaned up");
      const now = readFileSync(join(out, ".circuitscope-report.json"), "utf8");
      if (now !== marker) assert.match(now, /"schema":"circuitscope-report\/1"/);
      assert.ok(isCompleteHtml(join(out, "report.html")));
      JSON.parse(readFileSync(join(out, "results.json"), "utf8"));
    } finally {
      child.kill("SIGKILL");
    }
  }
});

test("study into a new directory: SIGINT at several points leaves no temporary files and no partial report", async () => {
  const out = join(root, "fresh-report");
  const args = ["study", "contractions", "--model", FIXTURE_DIR, "--quick", "--json", "--out", out];
  const full = await durationMs(args);
  rmSync(out, { recursive: true });
  for (const f of FRACTIONS) {
    const res = await runAndInterrupt(args, full * f);
    assertStoppedCleanly(res, `study at ${f}`);
    assert.deepEqual(leftovers(root), [], `study at ${f}`);
    if (existsSync(out)) {
      assert.ok(isCompleteHtml(join(out, "report.html")), `study at ${f}: a report, if any, is complete`);
      rmSync(out, { recursive: true });
    }
  }
});

test("attention --html into an existing directory, --svg-dir --png, patch --out/--html, heads --html, index: SIGINT leaves no temporary files", async () => {
  const m = ["--model", FIXTURE_DIR];
  const corpus = join(root, "corpus.txt");
  writeFileSync(corpus, "We're helping our friend while they wait. ".repeat(300));
  const prompt = "We're helping our friend while they";
  const commands: { name: string; args: (dir: string) => string[]; outputs: string[] }[] = [
    {
      name: "attention-html",
      args: (d) => ["attention", ...m, "-p", prompt, "--html", join(d, "attn.html")],
      outputs: ["attn.html"],
    },
    {
      name: "attention-svg",
      args: (d) => ["attention", ...m, "-p", prompt, "--svg-dir", join(d, "svgs"), "--png"],
      outputs: [],
    },
    {
      name: "patch",
      args: (d) => [
        "patch",
        ...m,
        "--clean",
        prompt,
        "--corrupted",
        "We are helping our friend while they",
        "--answer",
        "'re",
        "--wrong",
        " are",
        "-t",
        "resid_pre",
        "--out",
        join(d, "patch.json"),
        "--html",
        join(d, "patch.html"),
      ],
      outputs: ["patch.html"],
    },
    { name: "heads", args: (d) => ["heads", ...m, "--html", join(d, "heads.html")], outputs: ["heads.html"] },
    {
      name: "index",
      args: (d) => ["index", ...m, "--corpus", corpus, "--checkpoint-every", "4", "--out", join(d, "index")],
      outputs: ["index"],
    },
  ];
  // The commands run side by side, each in its own existing directory holding a file of the user's.
  await Promise.all(
    commands.map(async (c) => {
      const dir = join(root, c.name);
      mkdirSync(dir);
      writeFileSync(join(dir, "mine.txt"), "user file");
      const full = await durationMs(c.args(dir));
      for (const f of [0.6, 0.9]) {
        for (const o of c.outputs) rmSync(join(dir, o), { recursive: true, force: true });
        const res = await runAndInterrupt(c.args(dir), full * f);
        assertStoppedCleanly(res, `${c.name} at ${f}`);
        assert.deepEqual(leftovers(dir), [], `${c.name} at ${f}`);
        for (const o of c.outputs.filter((name) => name.endsWith(".html"))) {
          if (existsSync(join(dir, o)))
            assert.ok(isCompleteHtml(join(dir, o)), `${c.name} at ${f}: ${o} is complete`);
        }
        // An interrupted index keeps its last checkpoint, whose manifest names files that all exist.
        const manifest = join(dir, "index", "manifest.json");
        if (existsSync(manifest)) {
          const files = Object.values(JSON.parse(readFileSync(manifest, "utf8")).files) as string[];
          for (const file of files) assert.ok(existsSync(join(dir, "index", file)), `index at ${f}: ${file}`);
        }
        if (existsSync(join(dir, "patch.json"))) JSON.parse(readFileSync(join(dir, "patch.json"), "utf8"));
      }
      assert.equal(readFileSync(join(dir, "mine.txt"), "utf8"), "user file");
    }),
  );
});

/** Resolves once `cond` holds, checking every few milliseconds; fails after `ms`. */
async function until(cond: () => boolean, ms: number, what: string): Promise<void> {
  const end = performance.now() + ms;
  while (!cond()) {
    if (performance.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(5);
  }
}

test("index: Ctrl-C after a checkpoint saves a final one, prints the --resume command, and the resume completes the same index", async () => {
  const dir = join(root, "index-stop");
  mkdirSync(dir);
  const corpus = join(dir, "corpus.txt");
  writeFileSync(corpus, "We're helping our friend while they wait for the bus. ".repeat(2000));
  const out = join(dir, "index");
  const args = ["index", "--model", FIXTURE_DIR, "--corpus", corpus, "--batch-size", "2"];
  const whole = await finished(spawnCli([...args, "--checkpoint-every", "4", "--out", join(dir, "whole")]));
  assert.equal(whole.code, 0, whole.stderr);

  const child = spawnCli([...args, "--checkpoint-every", "4", "--out", out]);
  try {
    const result = cliResult(child);
    const manifest = join(out, "manifest.json");
    await until(() => existsSync(manifest) || child.exitCode !== null, 120_000, "the first checkpoint");
    assert.ok(existsSync(manifest), "the first checkpoint was written before the run ended");
    const seen = JSON.parse(readFileSync(manifest, "utf8"));
    child.kill("SIGINT");
    const res = await result;
    assert.equal(res.code, 130, res.stderr);
    assert.match(res.stderr, /checkpoint saved in .*\n {2}circuitscope index .* --resume\n/);
    const saved = JSON.parse(readFileSync(manifest, "utf8"));
    assert.equal(saved.progress.complete, false);
    assert.ok(saved.generation > seen.generation, "a checkpoint was written after the signal");
    for (const file of Object.values(saved.files) as string[]) assert.ok(existsSync(join(out, file)), file);
  } finally {
    child.kill("SIGKILL");
  }
  const resumed = await finished(spawnCli([...args, "--checkpoint-every", "4", "--out", out, "--resume"]));
  assert.equal(resumed.code, 0, resumed.stderr);
  const names = Object.values(JSON.parse(readFileSync(join(out, "manifest.json"), "utf8")).files) as string[];
  for (const name of names)
    assert.ok(readFileSync(join(out, name)).equals(readFileSync(join(dir, "whole", name))), name);
  assert.deepEqual(leftovers(dir), []);
});

/** Writes a first study report at `out` (to be replaced). */
async function firstReport(out: string): Promise<void> {
  const first = await runCli([
    "study",
    "contractions",
    "--model",
    FIXTURE_DIR,
    "--quick",
    "--json",
    "--out",
    out,
  ]);
  assert.equal(first.code, 0, first.stderr);
}

/** Runs a study through test/helpers/signal-during-write.ts, signalled at `at` of its report write. */
async function studySignalledAt(
  at: "build" | "swap",
  signal: NodeJS.Signals,
  out: string,
): Promise<CliResult> {
  const args = [
    "study",
    "contractions",
    "--model",
    FIXTURE_DIR,
    "--quick",
    "--json",
    "--overwrite",
    "--out",
    out,
  ];
  const child = spawn(
    process.execPath,
    ["--import", "tsx", join(REPO_ROOT, "test/helpers/signal-during-write.ts"), ...args],
    {
      cwd: REPO_ROOT, // where tsx resolves; every path given is absolute
      env: { ...process.env, SIGNAL_AT: at, SIGNAL: signal, OUT: out },
    },
  );
  child.stdin.end();
  try {
    return await cliResult(child);
  } finally {
    child.kill("SIGKILL");
  }
}

test("study: SIGINT/SIGTERM while the report is built goes through the atomic writer: exit 130/143, earlier report kept, no leftovers", async () => {
  const out = join(root, "study-signal-build");
  await firstReport(out);
  const before = readFileSync(join(out, ".circuitscope-report.json"), "utf8");
  for (const [signal, code] of [
    ["SIGINT", 130],
    ["SIGTERM", 143],
  ] as const) {
    const res = await studySignalledAt("build", signal, out);
    assert.equal(res.code, code, `${signal}: ${res.stderr}`);
    assert.equal(
      readFileSync(join(out, ".circuitscope-report.json"), "utf8"),
      before,
      `${signal}: the earlier report`,
    );
    assert.deepEqual(leftovers(root), [], signal);
  }
});

test("study: SIGINT/SIGTERM during the swap, when the new report is already in place, exits 0 and says so", async () => {
  const out = join(root, "study-signal-swap");
  await firstReport(out);
  for (const signal of ["SIGINT", "SIGTERM"] as const) {
    const before = readFileSync(join(out, ".circuitscope-report.json"), "utf8");
    const res = await studySignalledAt("swap", signal, out);
    assert.equal(res.code, 0, `${signal}: ${res.stderr}`);
    // The queued signal is handled if the process is still in its event loop; it may also have ended
    // first. Either way: success, and if anything is said, it is that nothing was lost.
    if (res.stderr !== "")
      assert.match(
        res.stderr,
        new RegExp(
          `^circuitscope: ${signal} came after .*study-signal-swap was complete and in place; nothing was lost\\.\n$`,
        ),
      );
    assert.notEqual(readFileSync(join(out, ".circuitscope-report.json"), "utf8"), before, "the new report");
    assert.ok(isCompleteHtml(join(out, "report.html")));
    assert.deepEqual(leftovers(root), [], signal);
  }
});
