import type { Command } from "commander";
import { formatToken } from "../../tokenizer/format-token.ts";
import {
  addModelOptions,
  loadModelFromOptions,
  type ModelCliOptions,
  parseIntOption,
  prependBosOption,
  printJson,
  UsageError,
} from "../common.ts";
import { addSaeOptions, prepareSae, type SaeCliOptions, saeRunOptions } from "../sae-options.ts";

interface PredictOptions extends ModelCliOptions, SaeCliOptions {
  prompt?: string;
  top: number;
  answer?: string;
  json?: boolean;
  prependBos: boolean;
}

export function register(program: Command): void {
  addSaeOptions(
    addModelOptions(
      program
        .command("predict")
        .description(
          "top-K next tokens at the final position (TransformerLens' test_prompt); with --sae, through an SAE (steered or ablated features)",
        )
        .argument("[text]", "the prompt (or use --prompt)"),
    ),
    { edits: true },
  )
    .option("-p, --prompt <text>", "the prompt")
    .option("-k, --top <k>", "how many top tokens", parseIntOption("top"), 10)
    .option("-a, --answer <text>", "report this single-token answer's rank, logit and probability")
    .addOption(prependBosOption())
    .option("--json", "print only JSON")
    .action(async (text: string | undefined, opts: PredictOptions) => {
      const prompt = opts.prompt ?? text;
      if (prompt === undefined) throw new UsageError("No prompt: pass it as an argument or with --prompt");
      const pending = await prepareSae(opts);
      const model = await loadModelFromOptions(opts);
      const runOpts = await saeRunOptions(pending, model);
      const { topPredictions, answerReport } = await import("../../analysis/predictions.ts");
      const tokenizeOpts = { prependBos: opts.prependBos };
      const answerToken = opts.answer !== undefined ? model.toSingleToken(opts.answer) : undefined;
      const tokens = model.toTokens(prompt, tokenizeOpts);
      const logits = model.run([tokens], { logits: "last", ...runOpts });
      const row = logits.data;
      const top = topPredictions(row, opts.top, model.tokenizer);
      const answer = answerToken !== undefined ? answerReport(row, answerToken, model.tokenizer) : undefined;
      if (opts.json) {
        printJson({ tokens, strTokens: model.toStrTokens(tokens), top, ...(answer ? { answer } : {}) });
        return;
      }
      const lines = [
        `Tokens: ${model
          .toStrTokens(tokens)
          .map((s) => `[${formatToken(s)}]`)
          .join(" ")}`,
      ];
      if (answer) {
        lines.push(
          `Answer ${formatToken(answer.str)}: rank ${answer.rank}, logit ${answer.logit.toFixed(3)}, prob ${(answer.prob * 100).toFixed(2)}%`,
        );
      }
      lines.push("Top predictions:");
      top.forEach((t, i) => {
        lines.push(
          `  ${String(i).padStart(2)}  logit ${t.logit.toFixed(3).padStart(8)}  prob ${(t.prob * 100).toFixed(2).padStart(6)}%  ${formatToken(t.str)}`,
        );
      });
      process.stdout.write(`${lines.join("\n")}\n`);
    });
}
