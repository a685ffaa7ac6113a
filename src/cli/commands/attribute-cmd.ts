import type { Command } from "commander";
import type { AttributionResult } from "../../analysis/attribute.ts";
import { formatToken } from "../../tokenizer/format-token.ts";
import type { ModelConfig } from "../../weights/config.ts";
import {
  addModelOptions,
  collect,
  loadModelFromOptions,
  type ModelCliOptions,
  parseIntOption,
  prependBosOption,
  printJson,
  rejectIgnoredFlags,
  UsageError,
} from "../common.ts";
import { checkOutputPaths } from "../output-paths.ts";

interface AttributeOptions extends ModelCliOptions {
  prompt?: string[];
  answer?: string;
  wrong?: string;
  logitLens?: boolean;
  top: number;
  json?: boolean;
  html?: string;
  prependBos: boolean;
}

export function register(program: Command): void {
  addModelOptions(
    program
      .command("attribute")
      .description(
        "direct logit attribution of answer vs wrong: logit diff, accumulated and decomposed residual, top heads",
      ),
  )
    .option("-p, --prompt <text>", "a prompt (repeat for a batch; results are batch means)", collect)
    .option("-a, --answer <text>", 'the single-token answer, e.g. "\'re"')
    .option("-w, --wrong <text>", 'the single-token wrong answer, e.g. " are"')
    .option("--logit-lens", "normalise each accumulated-residual entry with its own LayerNorm statistics")
    .option("-k, --top <n>", "how many heads to list", parseIntOption("top"), 10)
    .addOption(prependBosOption())
    .option("--json", "print only JSON (batch means)")
    .option("--html <file>", "write an HTML report: accumulated line, decomposed bars, layer x head heatmap")
    .action(async (opts: AttributeOptions, cmd: Command) => {
      if (opts.json) rejectIgnoredFlags(cmd, { top: "--top" }, "with --json (which prints every head)");
      const prompts = opts.prompt ?? [];
      if (prompts.length === 0) throw new UsageError('No prompt: pass --prompt "TEXT" (repeatable)');
      if (opts.answer === undefined || opts.wrong === undefined)
        throw new UsageError('Both --answer and --wrong are needed, e.g. --answer "\'re" --wrong " are"');
      if (!(opts.top >= 1)) throw new UsageError(`--top must be at least 1, got ${opts.top}`);
      checkOutputPaths([{ path: opts.html, flag: "--html", kind: "file" }]);
      const model = await loadModelFromOptions(opts);
      const single = (flag: string, text: string) => {
        try {
          return model.toSingleToken(text);
        } catch (e) {
          throw new UsageError(`--${flag}: ${(e as Error).message}`);
        }
      };
      const answer = single("answer", opts.answer);
      const wrong = single("wrong", opts.wrong);
      const { attributeLogitDiff, attributionJson } = await import("../../analysis/attribute.ts");
      const result = attributeLogitDiff(model, prompts, answer, wrong, {
        logitLens: opts.logitLens,
        prependBos: opts.prependBos,
      });
      const { nLayers, nHeads } = model.cfg;
      if (opts.html) await writeReport(opts.html, result, model.cfg, opts);
      if (opts.json) {
        printJson(attributionJson(result, nLayers, nHeads));
        return;
      }
      const { answerWrongReports } = await import("../../analysis/answer-metrics.ts");
      const reports = answerWrongReports(result.logits, result.lengths, answer, wrong, model.tokenizer);
      process.stdout.write(`${formatText(result, reports, prompts, opts, model.cfg)}\n`);
    });
}

type Reports = ReturnType<typeof import("../../analysis/answer-metrics.ts").answerWrongReports>;

function formatText(
  r: AttributionResult,
  reports: Reports,
  prompts: string[],
  opts: AttributeOptions,
  cfg: Pick<ModelConfig, "nHeads" | "finalSoftCap" | "postNorms">,
): string {
  const { nHeads } = cfg;
  const f = (x: number) => (x >= 0 ? " " : "") + x.toFixed(4);
  const pct = (p: number) => `${(p * 100).toFixed(2)}%`;
  const lines = [
    `Logit difference ${formatToken(opts.answer ?? "")} - ${formatToken(opts.wrong ?? "")} at each prompt's final position`,
  ];
  prompts.forEach((p, b) => {
    const { answer, wrong } = reports[b];
    lines.push(
      `  ${f(r.logitDiff.perPrompt[b])}  ${JSON.stringify(p)}  (answer rank ${answer.rank}, ${pct(answer.prob)}; wrong rank ${wrong.rank}, ${pct(wrong.prob)})`,
    );
  });
  lines.push(`  mean ${f(r.logitDiff.mean)}`);
  const offset = r.offsets.reduce((a, x) => a + x, 0) / r.offsets.length;
  if (Math.abs(offset) > 0)
    lines.push(`  (of which ${f(offset)} comes from biases no residual piece carries)`);
  if (cfg.finalSoftCap != null)
    lines.push(
      `  (the logits are soft-capped at ±${cfg.finalSoftCap}: the tables below attribute the pre-cap logit difference, which they sum to; the cap bends it, so they do not sum to the figures above)`,
    );
  if (cfg.postNorms)
    lines.push(
      "  (each head's output is normalised with the others after attention (ln1_post): head attributions are of their writes before that norm, not exact parts of the residual)",
    );
  const table = (title: string, labels: string[], values: Float64Array) => {
    lines.push("", title);
    const w = Math.max(...labels.map((l) => l.length));
    labels.forEach((l, i) => {
      lines.push(`  ${l.padEnd(w)}  ${f(values[i])}`);
    });
  };
  table(
    `Accumulated residual (${opts.logitLens ? "each entry's own LN statistics: logit lens" : "cached final LN scale"})`,
    r.accumulated.labels,
    r.accumulated.mean,
  );
  table(
    "Decomposed residual (cached final LN scale; parts sum to the logit difference minus the bias term)",
    r.decomposed.labels,
    r.decomposed.mean,
  );
  const order = Array.from(r.heads.mean.keys()).sort(
    (a, b) => Math.abs(r.heads.mean[b]) - Math.abs(r.heads.mean[a]),
  );
  const top = order.slice(0, opts.top);
  table(
    `Top ${top.length} heads by |direct logit attribution| (of ${r.heads.labels.length}, ${nHeads} per layer)`,
    top.map((i) => r.heads.labels[i]),
    Float64Array.from(top.map((i) => r.heads.mean[i])),
  );
  return lines.join("\n");
}

async function writeReport(
  path: string,
  r: AttributionResult,
  cfg: Pick<ModelConfig, "nLayers" | "nHeads" | "finalSoftCap">,
  opts: AttributeOptions,
): Promise<void> {
  const { writeHtmlReport } = await import("../../viz/index.ts");
  const { attributionFigures, attributionInputsList } = await import(
    "../../viz/presets/attribution-figures.ts"
  );
  const inputs = {
    prompts: opts.prompt ?? [],
    answer: opts.answer ?? "",
    wrong: opts.wrong ?? "",
    nLayers: cfg.nLayers,
    nHeads: cfg.nHeads,
    logitLens: opts.logitLens,
    model: opts.model,
    finalSoftCap: cfg.finalSoftCap,
  };
  const figs = attributionFigures(r, inputs);
  writeHtmlReport(path, {
    title: "Direct logit attribution",
    subtitle: `model ${opts.model}; ${r.lengths.length} prompt(s)`,
    sections: [
      { heading: "Inputs", inputs: attributionInputsList(r, inputs), figures: [] },
      { heading: "Accumulated residual stream", figures: [figs.accumulated] },
      { heading: "Decomposed residual stream", figures: [figs.decomposed] },
      { heading: "Heads", figures: [figs.heads] },
    ],
  });
}
