/**
 * Runs a circuitscope command in this process (as bin/circuitscope.js does) and sends this process a
 * signal at an exact moment of its report write, found by watching its file-system calls:
 *
 *   SIGNAL_AT=build   when the report's figures directory is created inside the temporary directory
 *   SIGNAL_AT=swap    when the temporary directory is removed after the swap (the new report is in place)
 *
 *   SIGNAL=SIGINT|SIGTERM  OUT=<the command's --out>  node --import tsx signal-during-write.ts <command args>
 *
 * The signal is only queued by process.kill: Node runs its handlers on the event loop's next turn, as it
 * would for a Ctrl-C arriving at that moment.
 */
import fs from "node:fs";
import { syncBuiltinESMExports } from "node:module";
import { basename } from "node:path";
import { TEMP_MARK } from "../../src/util/atomic-write.ts";

const at = process.env.SIGNAL_AT;
const signal = (process.env.SIGNAL ?? "SIGINT") as NodeJS.Signals;
const tempOfOut = `${TEMP_MARK}${basename(process.env.OUT ?? "")}-`;
let sent = false;
const send = () => {
  if (!sent) process.kill(process.pid, signal);
  sent = true;
};

const { mkdirSync, rmSync } = fs;
fs.mkdirSync = ((path: fs.PathLike, opts?: fs.MakeDirectoryOptions) => {
  if (at === "build" && String(path).includes(tempOfOut) && String(path).endsWith("/figures")) send();
  return mkdirSync(path, opts);
}) as typeof fs.mkdirSync;
fs.rmSync = ((path: fs.PathLike, opts?: fs.RmOptions) => {
  if (at === "swap" && basename(String(path)).startsWith(tempOfOut)) send();
  return rmSync(path, opts);
}) as typeof fs.rmSync;
syncBuiltinESMExports();

process.argv = [process.argv[0], "circuitscope", ...process.argv.slice(2)];
const { main } = await import("../../src/cli/main.ts");
await main();
