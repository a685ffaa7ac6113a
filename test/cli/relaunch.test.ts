/**
 * bin/low-rss-malloc.js: the CLI re-launches itself once so glibc starts with a fixed mmap threshold. A probe
 * script calls the re-launch as bin/circuitscope.js does, then reports what the process it runs in got
 * (its start-up environment from /proc, argv, execArgv) and which signals reached it.
 */
import assert from "node:assert/strict";
import { execFileSync, spawn, spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { glibcVersion, LOW_RSS_MALLOC_ENV, LOW_RSS_VAR, wantsRelaunch } from "../../bin/low-rss-malloc.js";
import { cliResult, spawnCli } from "../helpers/cli.ts";
import { REPO_ROOT } from "../helpers/fixture.ts";

const root = mkdtempSync(join(tmpdir(), "cs-relaunch-"));
after(() => rmSync(root, { recursive: true, force: true }));

const onGlibc = glibcVersion() !== undefined;
const needsGlibc = onGlibc ? {} : { skip: "re-launching happens on Linux with glibc only" };

/**
 * Modes: `report` prints what this process got; `exit N` then exits N; `die SIG` then kills itself with SIG
 * (default action); `count` counts SIGINT/SIGTERM, prints the count 0.5 s after the first (so a second
 * delivery is counted) and exits 130/143, or after 5 s prints 0 and exits 0.
 */
const PROBE = join(root, "probe.mjs");
writeFileSync(
  PROBE,
  `import { readFileSync } from "node:fs";
import { relaunchWithLowRssMalloc } from ${JSON.stringify(join(REPO_ROOT, "bin/low-rss-malloc.js"))};
if (!(await relaunchWithLowRssMalloc())) {
  const say = (o) => process.stdout.write(JSON.stringify(o) + "\\n");
  const startEnv = readFileSync("/proc/self/environ", "latin1").split("\\0");
  const [mode, arg] = process.argv.slice(2);
  if (mode === "count") {
    let received = [];
    const done = (code) => { say({ received }); process.exit(code); };
    for (const sig of ["SIGINT", "SIGTERM"])
      process.on(sig, () => {
        received.push(sig);
        if (received.length === 1) setTimeout(() => done(sig === "SIGINT" ? 130 : 143), 500);
      });
    setTimeout(() => done(0), 5000);
  }
  say({
    pid: process.pid,
    ppid: process.ppid,
    mmap: startEnv.find((e) => e.startsWith("MALLOC_MMAP_THRESHOLD_=")) ?? null,
    argv: process.argv.slice(2),
    gc: typeof globalThis.gc,
  });
  if (mode === "exit") process.exit(Number(arg));
  if (mode === "die") process.kill(process.pid, arg);
}
`,
);

/** The environment of a user who asked for the low-RSS mode and set nothing else (unless `extra` says). */
function plainEnv(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, [LOW_RSS_VAR]: "1", ...extra };
  for (const name of [...Object.keys(LOW_RSS_MALLOC_ENV), "CIRCUITSCOPE_LAUNCHER_PID"])
    if (!(name in extra)) delete env[name];
  for (const [name, value] of Object.entries(extra)) if (value === undefined) delete env[name];
  return env;
}

interface ProbeRun {
  pid: number;
  code: number | null;
  signal: NodeJS.Signals | null;
  lines: Record<string, unknown>[];
}

/** Runs the probe with piped stdio; `onFirstLine` runs once the command's process has started. */
function runProbe(
  args: string[],
  opts: { env?: NodeJS.ProcessEnv; execArgv?: string[]; onFirstLine?: (pid: number) => void } = {},
): Promise<ProbeRun> {
  const child = spawn(process.execPath, [...(opts.execArgv ?? []), PROBE, ...args], {
    env: opts.env ?? plainEnv(),
    stdio: ["ignore", "pipe", "pipe"],
  });
  let out = "";
  let err = "";
  let started = false;
  child.stdout.on("data", (d) => {
    out += d;
    if (!started && out.includes("\n")) {
      started = true;
      opts.onFirstLine?.(child.pid!);
    }
  });
  child.stderr.on("data", (d) => {
    err += d;
  });
  const killer = setTimeout(() => child.kill("SIGKILL"), 20_000);
  return new Promise((resolve) =>
    child.on("close", (code, signal) => {
      clearTimeout(killer);
      assert.equal(err, "", "the probe wrote nothing to stderr");
      const lines = out
        .trim()
        .split("\n")
        .map((l) => JSON.parse(l));
      resolve({ pid: child.pid!, code, signal, lines });
    }),
  );
}

test("the decision: re-launch only in the low-RSS mode, on glibc, unless a variable is set already or a debugger is asked for", () => {
  const plain = { env: { [LOW_RSS_VAR]: "1" }, glibc: "2.36", execArgv: [] };
  assert.equal(wantsRelaunch(plain), true);
  assert.equal(wantsRelaunch({ ...plain, env: {} }), false, "not asked for: glibc's defaults, full speed");
  assert.equal(wantsRelaunch({ ...plain, env: { [LOW_RSS_VAR]: "0" } }), false);
  assert.equal(wantsRelaunch({ ...plain, glibc: undefined }), false, "not glibc (musl, macOS, Windows)");
  assert.equal(
    wantsRelaunch({ ...plain, env: { ...plain.env, MALLOC_MMAP_THRESHOLD_: "65536" } }),
    false,
    "the user's own",
  );
  assert.equal(wantsRelaunch({ ...plain, execArgv: ["--inspect-brk=9230"] }), false);
  assert.equal(
    wantsRelaunch({ ...plain, env: { ...plain.env, NODE_OPTIONS: "--max-old-space-size=8000 --inspect" } }),
    false,
  );
  assert.equal(
    wantsRelaunch({ ...plain, execArgv: ["--expose-gc"], env: { ...plain.env, NODE_OPTIONS: "--import=x" } }),
    true,
  );
});

test("glibcVersion agrees with getconf GNU_LIBC_VERSION", { skip: process.platform !== "linux" }, (t) => {
  let getconf: string;
  try {
    getconf = execFileSync("getconf", ["GNU_LIBC_VERSION"], { encoding: "utf8" }).trim();
  } catch {
    t.skip("no getconf GNU_LIBC_VERSION (not glibc)");
    return;
  }
  assert.equal(`glibc ${glibcVersion()}`, getconf);
});

test(
  "the command runs once, in a child started with the malloc variable, the same execArgv and argv",
  needsGlibc,
  async () => {
    const run = await runProbe(["report", "a", "b c"], { execArgv: ["--expose-gc"] });
    assert.equal(run.code, 0);
    assert.equal(run.lines.length, 1, "the command ran once");
    const [r] = run.lines;
    assert.notEqual(r.pid, run.pid, "ran in another process");
    assert.equal(r.ppid, run.pid, "a child of the launcher");
    const [[name, value]] = Object.entries(LOW_RSS_MALLOC_ENV);
    assert.equal(r.mmap, `${name}=${value}`, "in the environment glibc reads at start-up");
    assert.deepEqual(r.argv, ["report", "a", "b c"]);
    assert.equal(r.gc, "function", "--expose-gc was passed on");
  },
);

test("no re-launch unless the low-RSS mode is asked for, or when the variable is set already", async () => {
  const optedOut = await runProbe(["report"], { env: plainEnv({ [LOW_RSS_VAR]: undefined }) });
  assert.equal(optedOut.lines[0].pid, optedOut.pid);
  assert.equal(optedOut.lines[0].mmap, null);
  const own = await runProbe(["report"], { env: plainEnv({ MALLOC_MMAP_THRESHOLD_: "65536" }) });
  assert.equal(own.lines[0].pid, own.pid);
  assert.equal(own.lines[0].mmap, "MALLOC_MMAP_THRESHOLD_=65536", "the user's value is kept");
});

test(
  "the launcher ends as the child did: its exit code, or death by the same signal",
  needsGlibc,
  async () => {
    const exit3 = await runProbe(["exit", "3"]);
    assert.notEqual(exit3.lines[0].pid, exit3.pid);
    assert.deepEqual([exit3.code, exit3.signal], [3, null]);
    const killed = await runProbe(["die", "SIGTERM"]);
    assert.notEqual(killed.lines[0].pid, killed.pid);
    assert.deepEqual([killed.code, killed.signal], [null, "SIGTERM"]);
  },
);

for (const [signal, code] of [
  ["SIGINT", 130],
  ["SIGTERM", 143],
] as const) {
  test(
    `${signal} sent to the launcher (no terminal) reaches the child exactly once; exit ${code}`,
    needsGlibc,
    async () => {
      const run = await runProbe(["count"], { onFirstLine: (pid) => process.kill(pid, signal) });
      assert.notEqual(run.lines[0].pid, run.pid);
      assert.deepEqual(run.lines[1], { received: [signal] });
      assert.deepEqual([run.code, run.signal], [code, null]);
    },
  );
}

const hasScript = spawnSync("script", ["--version"]).status === 0;
test("Ctrl-C typed at a terminal reaches the child exactly once (not once more from the launcher)", {
  skip: !onGlibc || !hasScript ? "needs glibc and util-linux script (a pseudo-terminal)" : false,
}, async () => {
  // script(1) runs the probe on a pseudo-terminal; ^C written there makes the terminal signal its
  // foreground process group, launcher and child both, as a user's Ctrl-C does.
  const cmd = `${JSON.stringify(process.execPath)} ${JSON.stringify(PROBE)} count`;
  const term = spawn("script", ["-qfec", cmd, "/dev/null"], { env: plainEnv(), stdio: "pipe" });
  let out = "";
  term.stdout.on("data", (d) => {
    out += d;
    if (out.includes('"ppid"') && !out.includes("\x03sent")) {
      out += "\x03sent";
      term.stdin.write("\x03");
    }
  });
  const killer = setTimeout(() => term.kill("SIGKILL"), 20_000);
  const code = await new Promise((r) => term.on("close", r));
  clearTimeout(killer);
  const counts = out.match(/\{"received":\[[^\]]*\]\}/g);
  assert.deepEqual(counts, ['{"received":["SIGINT"]}'], out);
  assert.equal(code, 130, "the child's 130, through the launcher and script");
});

test(
  "a launcher killed outright (SIGKILL) does not leave the child running: it gets SIGTERM",
  needsGlibc,
  async () => {
    const run = await runProbe(["count"], { onFirstLine: (pid) => process.kill(pid, "SIGKILL") });
    assert.equal(run.signal, "SIGKILL");
    assert.deepEqual(run.lines[1], { received: ["SIGTERM"] }, "within the 5 s the probe waits");
  },
);

test("bin/circuitscope.js re-launches before running the command, and runs it once", needsGlibc, async () => {
  // A preloaded module (NODE_OPTIONS reaches both processes) reports each process's start-up environment.
  const preload = join(root, "report-env.mjs");
  writeFileSync(
    preload,
    `import { readFileSync } from "node:fs";
const e = readFileSync("/proc/self/environ", "latin1").split("\\0").find((v) => v.startsWith("MALLOC_MMAP_THRESHOLD_="));
process.stderr.write("start-up " + process.pid + " " + (e ?? "-") + "\\n");`,
  );
  const env = plainEnv({ NODE_OPTIONS: `--import=${preload}` });
  const res = await cliResult(spawnCli(["--version"], { env }));
  assert.equal(res.code, 0, res.stderr);
  const { version } = JSON.parse(readFileSync(join(REPO_ROOT, "package.json"), "utf8"));
  assert.equal(res.stdout, `${version}\n`, "printed once");
  const starts = res.stderr.match(/^start-up \d+ \S+$/gm) ?? [];
  assert.equal(starts.length, 2, res.stderr);
  assert.match(starts[0], / -$/, "the launcher started without it");
  assert.ok(starts[1].endsWith(` MALLOC_MMAP_THRESHOLD_=${LOW_RSS_MALLOC_ENV.MALLOC_MMAP_THRESHOLD_}`));
  // Not asked for: one process, glibc's defaults.
  const plain = await cliResult(
    spawnCli(["--version"], {
      env: plainEnv({ NODE_OPTIONS: `--import=${preload}`, [LOW_RSS_VAR]: undefined }),
    }),
  );
  assert.equal(plain.stdout, `${version}\n`);
  assert.deepEqual(plain.stderr.match(/^start-up \d+ \S+$/gm)?.length, 1, plain.stderr);
  assert.match(plain.stderr, /^start-up \d+ -$/m);
});
