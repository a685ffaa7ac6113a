import assert from "node:assert/strict";
import { mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { userMessage } from "../../src/cli/user-message.ts";

const thrown = (f: () => unknown): unknown => {
  try {
    f();
  } catch (err) {
    return err;
  }
  throw new Error("did not throw");
};

test("file-system errors name the path and say how to fix it", () => {
  const enoent = userMessage(thrown(() => readFileSync("/no/such/file.json")));
  assert.equal(enoent, "/no/such/file.json: no such file or directory: check the path (ENOENT in open)");
  const eisdir = userMessage(thrown(() => readFileSync("/")));
  assert.match(eisdir, /that is a directory where a file was expected: give a file path \(EISDIR in read\)/);
  const dir = mkdtempSync(join(tmpdir(), "cs-user-message-"));
  writeFileSync(join(dir, "file"), "");
  const enotdir = userMessage(thrown(() => openSync(join(dir, "file", "x"), "w")));
  rmSync(dir, { recursive: true });
  assert.equal(
    enotdir,
    `${join(dir, "file", "x")}: a part of that path is a file, not a directory: fix the path (ENOTDIR in open)`,
  );
  // Errors of our own pass through unchanged.
  assert.equal(userMessage(new Error("--top must be at least 1")), "--top must be at least 1");
});

test("a port in use names the address and the --port fix", async () => {
  const busy = createServer();
  await new Promise<void>((resolve) => busy.listen(0, "127.0.0.1", resolve));
  const port = (busy.address() as { port: number }).port;
  const second = createServer();
  const err = await new Promise<unknown>((resolve) => {
    second.once("error", resolve);
    second.listen(port, "127.0.0.1");
  });
  busy.close();
  assert.equal(
    userMessage(err),
    `127.0.0.1:${port}: the port is already in use: pick another with --port (or --port 0 for any free port) (EADDRINUSE in listen)`,
  );
});
