import { readdirSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { Command, CommanderError } from "commander";
import { packageInfo } from "../util/package-info.ts";
import { userMessage } from "./user-message.ts";

/** A command module: `register(program)` adds its command. */
type CommandModule = { register?: (p: Command) => void };

/**
 * Each `commands/*-cmd.ts` exports `register(program)`; they are discovered here so commands can be added
 * without editing this file. Command modules import heavy dependencies lazily, inside their actions.
 * The published package holds the same modules compiled to `*-cmd.js` (beside their `.d.ts`).
 * `extraCommands` are command modules from outside the library (the `bench` command lives in bench/,
 * which library code must not import; bin/circuitscope.js passes it in).
 */
export async function buildProgram(extraCommands: readonly string[]): Promise<Command> {
  const program = new Command("circuitscope")
    .description(
      "Mechanistic interpretability for transformer language models (GPT-2, the Llama family: Llama, Mistral, Qwen2, SmolLM; GPT-NeoX: Pythia; and Gemma 2, Gemma 3 text)",
    )
    .version(packageInfo().version, "-V, --version", "print circuitscope's version")
    .showHelpAfterError()
    .exitOverride();
  const dir = join(dirname(fileURLToPath(import.meta.url)), "commands");
  for (const file of readdirSync(dir)
    .filter((f) => /-cmd\.(ts|js)$/.test(f) && !f.endsWith(".d.ts"))
    .sort()) {
    const mod = (await import(join(dir, file))) as CommandModule;
    mod.register?.(program);
  }
  for (const file of extraCommands) ((await import(file)) as CommandModule).register?.(program);
  return program;
}

export async function main(opts: { extraCommands?: readonly string[] } = {}): Promise<void> {
  const program = await buildProgram(opts.extraCommands ?? []);
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

// Run directly (`node --import tsx src/cli/main.ts ...`, as some tests do): every command but `bench`,
// which only bin/circuitscope.js adds.
if (process.argv[1] && import.meta.url === pathToFileURL(resolve(process.argv[1])).href) await main();
