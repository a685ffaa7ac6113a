import { readdirSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { Command, CommanderError } from "commander";

/**
 * Each `commands/*-cmd.ts` exports `register(program)`; they are discovered here so commands can be added
 * without editing this file. Command modules import heavy dependencies lazily, inside their actions.
 */
async function buildProgram(): Promise<Command> {
  const program = new Command("circuitscope")
    .description("Mechanistic interpretability for GPT-2-style models")
    .showHelpAfterError()
    .exitOverride();
  const dir = join(dirname(fileURLToPath(import.meta.url)), "commands");
  for (const file of readdirSync(dir)
    .filter((f) => f.endsWith("-cmd.ts"))
    .sort()) {
    const mod = (await import(join(dir, file))) as { register?: (p: Command) => void };
    mod.register?.(program);
  }
  return program;
}

const FS_FIXES: Record<string, string> = {
  EACCES: "no permission: choose a path you can write to (or fix its permissions)",
  EPERM: "the operation is not permitted: choose another path (or fix its permissions)",
  EISDIR: "that is a directory where a file was expected: give a file path",
  ENOTDIR: "a part of that path is a file, not a directory: fix the path",
  ENOENT: "no such file or directory: check the path",
  ENOSPC: "the disk is full: free space or write elsewhere",
  EROFS: "the file system is read-only: write elsewhere",
  EEXIST: "it already exists: choose another path",
  EADDRINUSE: "the port is already in use: pick another with --port (or --port 0 for any free port)",
  EADDRNOTAVAIL: "that address is not available on this machine: use --host 127.0.0.1",
  EMFILE: "too many open files: raise the limit (ulimit -n) and retry",
};

/** A system error (raw `EACCES: permission denied, open ...`) gets its path and a fix; others pass through. */
function userMessage(err: unknown): string {
  if (!(err instanceof Error)) return String(err);
  const sys = err as NodeJS.ErrnoException & { address?: string; port?: number };
  const fix = sys.code ? FS_FIXES[sys.code] : undefined;
  if (!fix) return err.message;
  const where = sys.path ?? (sys.port !== undefined ? `${sys.address ?? ""}:${sys.port}` : undefined);
  return `${where ? `${where}: ` : ""}${fix} (${sys.code}${sys.syscall ? ` in ${sys.syscall}` : ""})`;
}

async function main(): Promise<void> {
  const program = await buildProgram();
  try {
    await program.parseAsync(process.argv);
  } catch (err) {
    if (err instanceof CommanderError) {
      process.exitCode = err.exitCode === 0 ? 0 : 2;
      return;
    }
    process.stderr.write(`circuitscope: error: ${userMessage(err)}\n`);
    if (process.env.CIRCUITSCOPE_DEBUG && err instanceof Error) process.stderr.write(`${err.stack}\n`);
    process.exitCode = 1;
  }
}

await main();
