import { type Command, Option } from "commander";
import type { HookedTransformer } from "../model/hooked-transformer.ts";
import type { KernelName } from "../tensor/kernels.ts";
import { signalExitCode, stopOnInterrupt, stoppedBy } from "../util/interrupt.ts";

/** Options every model-using command shares. */
export interface ModelCliOptions {
  model: string;
  backend: KernelName;
  process: boolean; // commander turns --no-process into process: false
  offline?: boolean;
  memoryLimit?: string;
}

export function addModelOptions(cmd: Command, defaultModel?: string): Command {
  return cmd
    .option(
      "-m, --model <name|dir>",
      "stories260k (bundled), a hub id (gpt2, openai-community/gpt2, owner/name, ...) or a local checkpoint dir",
      defaultModel,
    )
    .option("--backend <name>", "numeric kernels: onnx (fast) or reference (portable TypeScript)", "onnx")
    .option("--no-process", "skip TransformerLens weight processing (fold LN, centre weights, ...)")
    .option("--offline", "use the Hugging Face cache only, never the network")
    .option(
      "--memory-limit <size>",
      "memory this run may use (e.g. 8G); a model that would not fit is refused before loading (default: what is free)",
    );
}

export async function loadModelFromOptions(opts: ModelCliOptions): Promise<HookedTransformer> {
  if (!opts.model)
    throw new UsageError("No model given: pass --model gpt2 (or a local checkpoint directory)");
  const { HookedTransformer } = await import("../model/hooked-transformer.ts");
  const { parseByteSize } = await import("../util/memory-budget.ts");
  let memoryLimit: number | undefined;
  if (opts.memoryLimit !== undefined) {
    try {
      memoryLimit = parseByteSize(opts.memoryLimit);
    } catch (err) {
      throw new UsageError((err as Error).message);
    }
  }
  return HookedTransformer.fromPretrained(opts.model, {
    memoryLimit,
    backend: opts.backend,
    processing: opts.process === false ? false : undefined,
    hub: { offline: opts.offline, progress: true },
  });
}

/** The clean/corrupted prompt pairs and the answer/wrong tokens of a logit-difference metric. */
export function addPairOptions(cmd: Command): Command {
  return cmd
    .option("--clean <text>", "clean prompt (repeat for a batch)", collect, [])
    .option(
      "--corrupted <text>",
      "corrupted prompt, same token length as its clean prompt (repeat in order)",
      collect,
      [],
    )
    .option("--answer <text>", "the clean answer token (one token, mind the leading space)")
    .option("--wrong <text>", "the corrupted (wrong) answer token");
}

/** `--no-prepend-bos`: tokenize without the model's BOS token (`<|endoftext|>` on GPT-2, `<s>` on Llama). */
export function prependBosOption(): Option {
  return new Option(
    "--no-prepend-bos",
    "do not prepend the model's BOS token (<|endoftext|> on GPT-2, <s> on Llama)",
  );
}

/** An error whose message is the whole story for the user (no stack trace). */
export class UsageError extends Error {}

export function printJson(value: unknown): void {
  process.stdout.write(`${JSON.stringify(value)}\n`);
}

/** Parses "7.11,10.1"-style lists of layer.index pairs. */
export function parseLayerIndexList(text: string, what: string): [number, number][] {
  return text.split(",").map((part) => {
    const m = /^\s*(\d+)\.(\d+)\s*$/.exec(part);
    if (!m) throw new UsageError(`Bad ${what} "${part}": write LAYER.INDEX, e.g. 7.11`);
    return [Number(m[1]), Number(m[2])];
  });
}

export function parseIntOption(name: string) {
  return (value: string): number => {
    const n = Number(value);
    if (!Number.isInteger(n)) throw new UsageError(`--${name} must be an integer, got "${value}"`);
    return n;
  };
}

/** An option parser for integers >= 1 (counts and sizes), naming the option in its error. */
export function positiveIntOption(name: string) {
  const parseInteger = parseIntOption(name);
  return (value: string): number => {
    const n = parseInteger(value);
    if (n < 1) throw new UsageError(`--${name} must be at least 1, got ${n}`);
    return n;
  };
}

/** An option parser for integers >= 0 (0 meaning none), naming the option in its error. */
export function nonNegativeIntOption(name: string) {
  const parseInteger = parseIntOption(name);
  return (value: string): number => {
    const n = parseInteger(value);
    if (n < 0) throw new UsageError(`--${name} must be 0 or more, got ${n}`);
    return n;
  };
}

/** Collects a repeatable option (`--prompt a --prompt b`). */
export function collect(value: string, previous: string[] = []): string[] {
  return [...previous, value];
}

/**
 * Refuses a flag the user typed that the chosen mode would silently ignore (a flag that is accepted must
 * do what it says). `flags` maps option keys (camelCase) to their flag spelling; `why` names the mode.
 */
export function rejectIgnoredFlags(cmd: Command, flags: Record<string, string>, why: string): void {
  for (const [key, flag] of Object.entries(flags)) {
    if (cmd.getOptionValueSource(key) === "cli")
      throw new UsageError(`${flag} has no effect ${why}: drop it`);
  }
}

/**
 * Runs `work` with a signal that Ctrl-C (or SIGTERM) aborts instead of ending the process; a second
 * Ctrl-C ends it. The one Ctrl-C path of every command: src/util/interrupt.ts.
 */
export async function withCtrlC<T>(work: (signal: AbortSignal) => Promise<T>): Promise<T> {
  return stopOnInterrupt(work);
}

/**
 * `withCtrlC` for work that writes nothing until it is done: when Ctrl-C stopped it, says so, sets exit
 * code 130 and returns null, so the caller writes no output.
 */
export async function untilCtrlC<T>(
  what: string,
  work: (signal: AbortSignal) => Promise<T>,
): Promise<T | null> {
  let used: AbortSignal | undefined;
  try {
    return await withCtrlC((signal) => {
      used = signal;
      return work(signal);
    });
  } catch (err) {
    if (!used?.aborted) throw err;
    process.stderr.write(`circuitscope: ${what} stopped (Ctrl-C); no output written\n`);
    process.exitCode = signalExitCode(stoppedBy(used) ?? "SIGINT");
    return null;
  }
}
