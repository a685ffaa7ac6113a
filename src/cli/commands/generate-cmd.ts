import type { Command } from "commander";
import {
  addModelOptions,
  loadModelFromOptions,
  type ModelCliOptions,
  parseIntOption,
  printJson,
  UsageError,
} from "../common.ts";
import { addSaeOptions, prepareSae, type SaeCliOptions, saeRunOptions } from "../sae-options.ts";

interface GenerateCliOptions extends ModelCliOptions, SaeCliOptions {
  prompt?: string;
  maxNewTokens: number;
  temperature: number;
  topK?: number;
  topP?: number;
  seed: number;
  json?: boolean;
}

const parseNumber = (name: string) => (v: string) => {
  const n = Number(v);
  if (!Number.isFinite(n)) throw new UsageError(`--${name} must be a number, got "${v}"`);
  return n;
};

export function register(program: Command): void {
  addSaeOptions(
    addModelOptions(
      program
        .command("generate")
        .description(
          "continue a prompt (greedy with --temperature 0; sampling with temperature, top-k, top-p), reusing keys/values between steps; with --sae, through an SAE (steered or ablated features)",
        )
        .argument("[text]", "the prompt (or use --prompt)"),
    ),
    { edits: true },
  )
    .option("-p, --prompt <text>", "the prompt")
    .option("-n, --max-new-tokens <n>", "tokens to generate", parseIntOption("max-new-tokens"), 20)
    .option("-t, --temperature <t>", "0 = greedy", parseNumber("temperature"), 1)
    .option("--top-k <k>", "sample among the k most likely tokens", parseIntOption("top-k"))
    .option(
      "--top-p <p>",
      "sample among the smallest set of tokens with this much probability",
      parseNumber("top-p"),
    )
    .option("--seed <n>", "sampling seed", parseIntOption("seed"), 0)
    .option("--json", "print only JSON")
    .action(async (text: string | undefined, opts: GenerateCliOptions) => {
      const prompt = opts.prompt ?? text;
      if (prompt === undefined) throw new UsageError("No prompt: pass it as an argument or with --prompt");
      if (opts.maxNewTokens < 0) throw new UsageError(`-n must be 0 or more, got ${opts.maxNewTokens}`);
      const pending = await prepareSae(opts);
      const model = await loadModelFromOptions(opts);
      const { nCtx } = model.cfg;
      const promptTokens = model.toTokens(prompt).length;
      if (promptTokens + opts.maxNewTokens > nCtx) {
        throw new UsageError(
          `The prompt is ${promptTokens} tokens (counting the BOS token at the start) and -n asks for ${opts.maxNewTokens} more, ` +
            `but the model's context holds ${nCtx}: use -n ${Math.max(0, nCtx - promptTokens)} or less, or shorten the prompt.`,
        );
      }
      const runOpts = await saeRunOptions(pending, model);
      const out = model.generate(prompt, {
        ...runOpts,
        maxNewTokens: opts.maxNewTokens,
        temperature: opts.temperature,
        topK: opts.topK,
        topP: opts.topP,
        seed: opts.seed,
      });
      if (opts.json) printJson({ prompt, tokens: out.tokens, newTokens: out.newTokens, text: out.text });
      else process.stdout.write(`${out.text}\n`);
    });
}
