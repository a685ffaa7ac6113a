import { readdirSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { Command, CommanderError } from "commander";
import { userMessage } from "./user-message.ts";

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
