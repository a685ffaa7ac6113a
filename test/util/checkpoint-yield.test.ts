import assert from "node:assert/strict";
import { test } from "node:test";
import { checkpointYield, yieldThenAborted } from "../../src/util/checkpoint-yield.ts";

test("yieldThenAborted: lets an abort queued on the event loop land, then says whether it did", async () => {
  assert.equal(await yieldThenAborted(undefined), false);
  const quiet = new AbortController();
  assert.equal(await yieldThenAborted(quiet.signal), false);
  // An abort scheduled before the yield (as a Ctrl-C handler would be) is seen after it, not before.
  const stop = new AbortController();
  setImmediate(() => stop.abort());
  assert.equal(stop.signal.aborted, false);
  assert.equal(await yieldThenAborted(stop.signal), true);
});

test("checkpointYield throws the caller's error once aborted, and only then", async () => {
  const stopped = () => new Error("stopped here");
  const stop = new AbortController();
  await checkpointYield(stop.signal, stopped);
  setImmediate(() => stop.abort());
  await assert.rejects(checkpointYield(stop.signal, stopped), /stopped here/);
});
