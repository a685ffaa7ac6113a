/**
 * `circuitscope serve` as a user runs it (a spawned CLI): the printed address carries the session token,
 * and a server that cannot listen exits at once, non-zero, with the fix — whether the port is taken
 * before start-up or while the model loads (then the model worker must be shut down for the exit).
 */
import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { createServer as createNetServer, type Server } from "node:net";
import { relative } from "node:path";
import { test } from "node:test";
import { TOKEN_HEADER } from "../../src/server/access-guard.ts";
import { FIXTURE_DIR } from "../helpers/fixture.ts";

const MODEL = relative(process.cwd(), FIXTURE_DIR); // as a user would type it

function serve(args: string[]): {
  child: ChildProcess;
  out: () => string;
  err: () => string;
  exit: Promise<number | null>;
} {
  const child = spawn(
    process.execPath,
    ["--import", "tsx", "src/cli/main.ts", "serve", "--model", MODEL, ...args],
    {
      stdio: ["ignore", "pipe", "pipe"],
    },
  );
  let out = "";
  let err = "";
  child.stdout?.on("data", (c) => (out += c));
  child.stderr?.on("data", (c) => (err += c));
  const exit = new Promise<number | null>((resolve) => child.on("exit", (code) => resolve(code)));
  return { child, out: () => out, err: () => err, exit };
}

function occupy(port = 0): Promise<Server> {
  return new Promise((resolve, reject) => {
    const s = createNetServer();
    s.once("error", reject);
    s.listen(port, "127.0.0.1", () => resolve(s));
  });
}

async function until(cond: () => boolean, ms: number, what: string): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** Fails the test instead of hanging it when the process does not exit (the bug this guards against). */
async function exitWithin(run: ReturnType<typeof serve>, ms: number): Promise<number | null> {
  const timer = setTimeout(() => run.child.kill("SIGKILL"), ms);
  const code = await run.exit;
  clearTimeout(timer);
  return code;
}

test("a taken port fails at once, before the model loads, with the fix", async () => {
  const taken = await occupy();
  const port = (taken.address() as { port: number }).port;
  try {
    const t0 = performance.now();
    const run = serve(["--port", String(port)]);
    const code = await exitWithin(run, 15_000);
    const elapsed = performance.now() - t0;
    assert.equal(code, 1, run.err());
    assert.equal(
      run.err(),
      `circuitscope: error: port ${port} is in use: pass --port 0 (any free port) or another port\n`,
    );
    assert.doesNotMatch(run.err(), /Loading|at .*\.ts/, "no model load, no stack trace");
    // Spawning node + tsx alone takes most of this; the old code never exited at all.
    assert.ok(elapsed < 5000, `exited after ${elapsed.toFixed(0)} ms`);
  } finally {
    taken.close();
  }
});

test("an address that is not this machine's fails at once with the fix", async () => {
  const run = serve(["--port", "0", "--host", "192.0.2.1"]); // TEST-NET-1: never a local address
  assert.equal(await exitWithin(run, 15_000), 1);
  assert.match(run.err(), /address 192\.0\.2\.1 is not an address of this machine: pass --host 127\.0\.0\.1/);
  assert.doesNotMatch(run.err(), /Loading/, "checked before the model loads");
});

test("a port taken while the model loads: the server shuts its worker down and exits non-zero", async () => {
  const free = await occupy();
  const port = (free.address() as { port: number }).port;
  await new Promise((r) => free.close(r));
  const run = serve(["--port", String(port)]);
  let thief: Server | undefined;
  try {
    await until(() => run.err().includes("Loading"), 15_000, "the model load to start");
    thief = await occupy(port);
    const code = await exitWithin(run, 15_000);
    assert.equal(code, 1, `${run.err()}${run.out()}`);
    assert.match(run.err(), new RegExp(`port ${port} is in use: pass --port 0`));
    assert.equal(run.out(), "", "no address was printed");
  } finally {
    thief?.close();
    run.child.kill("SIGKILL");
  }
});

test("the printed address carries the session token; the API wants it; SIGTERM stops the server", async () => {
  const run = serve(["--port", "0"]);
  try {
    await until(() => run.out().includes("\n"), 30_000, "the address");
    const m = /circuitscope explorer for (\S+): (http:\/\/127\.0\.0\.1:\d+\/\?token=([0-9a-f]{48}))\n/.exec(
      run.out(),
    );
    assert.ok(m, run.out());
    assert.equal(m[1], MODEL);
    const url = new URL(m[2]);
    const info = await fetch(new URL("/api/info", url), { headers: { [TOKEN_HEADER]: m[3] } });
    assert.equal(info.status, 200);
    assert.equal(((await info.json()) as { model: string }).model, MODEL, "the model as typed");
    assert.equal((await fetch(new URL("/api/info", url))).status, 401);
    run.child.kill("SIGTERM");
    assert.equal(await exitWithin(run, 15_000), 0);
  } finally {
    run.child.kill("SIGKILL");
  }
});

test("--no-token prints a plain address and a warning", async () => {
  const run = serve(["--port", "0", "--no-token"]);
  try {
    // stdout and stderr are separate pipes: wait for each line itself, not for a time after the other.
    await Promise.all([
      printed(run, "stdout", /\n/),
      printed(run, "stderr", /--no-token: any program on this machine can use the API/),
    ]);
    const m = /: (http:\/\/127\.0\.0\.1:\d+\/)\n/.exec(run.out());
    assert.ok(m, run.out());
    assert.equal((await fetch(new URL("/api/info", m[1]))).status, 200);
    run.child.kill("SIGTERM");
    assert.equal(await exitWithin(run, 15_000), 0);
  } finally {
    run.child.kill("SIGKILL");
  }
});

/** Resolves once the child's stdout or stderr matches `pattern` (with the match), or rejects when it exits first. */
function printed(run: ReturnType<typeof serve>, stream: "stdout" | "stderr", pattern: RegExp) {
  const text = stream === "stdout" ? run.out : run.err;
  return new Promise<RegExpExecArray>((resolve, reject) => {
    const check = () => {
      const m = pattern.exec(text());
      if (m) {
        run.child[stream]?.off("data", check);
        resolve(m);
      }
    };
    run.child[stream]?.on("data", check);
    check();
    void run.exit.then((code) =>
      reject(new Error(`exited ${code} before printing ${pattern}: ${run.err()}`)),
    );
  });
}

test("every spelling of 'all interfaces' warns alike and prints an address that works", async () => {
  for (const host of ["0.0.0.0", "0", "0.0", "::", "::0", "0:0:0:0:0:0:0:0"]) {
    const run = serve(["--port", "0", "--host", host]);
    const giveUp = setTimeout(() => run.child.kill("SIGKILL"), 60_000); // a missing warning fails, not hangs
    try {
      const m = await printed(run, "stdout", /: (http:\/\/[^/]+\/)\?token=([0-9a-f]{48})\n/);
      await printed(run, "stderr", /Warning: listening on every network interface/);
      const info = await fetch(new URL("/api/info", m[1]), { headers: { [TOKEN_HEADER]: m[2] } });
      assert.equal(info.status, 200, `--host ${host}: ${m[1]} answers ${info.status}`);
      assert.equal((await fetch(m[1])).status, 200, `--host ${host}: the page`);
    } finally {
      clearTimeout(giveUp);
      run.child.kill("SIGKILL");
    }
  }
});

test("--host '' is reported as an empty --host with the fix, before the model loads", async () => {
  for (const host of ["", " "]) {
    const run = serve(["--port", "0", "--host", host]);
    try {
      assert.equal(await exitWithin(run, 15_000), 1);
      assert.equal(
        run.err(),
        "circuitscope: error: --host is empty: pass the address to listen on, e.g. --host 127.0.0.1 (the default, this machine only) or --host 0.0.0.0 (every interface)\n",
      );
    } finally {
      run.child.kill("SIGKILL");
    }
  }
});
