import type { Command } from "commander";
import { headName } from "../../model/component-names.ts";
import { nest } from "../../tensor/tensor.ts";
import {
  addModelOptions,
  collect,
  loadModelFromOptions,
  type ModelCliOptions,
  parseIntOption,
  printJson,
  rejectIgnoredFlags,
  UsageError,
} from "../common.ts";
import { largestCells } from "../heatmap-page.ts";
import { checkOutputPaths } from "../output-paths.ts";

interface HeadsOptions extends ModelCliOptions {
  kind?: string[];
  prompt?: string[];
  seqs: number;
  halfLength: number;
  seed: number;
  top: number;
  html?: string;
  json?: boolean;
}

const KINDS = ["previous_token", "duplicate_token", "induction"] as const;

export function register(program: Command): void {
  addModelOptions(
    program
      .command("heads")
      .description(
        "head detection (TransformerLens' head_detector): previous-token, duplicate-token and induction scores of every head",
      ),
  )
    .option("--kind <kind>", `detector (repeatable): ${KINDS.join(", ")} (default: all)`, collect)
    .option(
      "-p, --prompt <text>",
      "score on this text (repeatable); default: seeded repeated random tokens",
      collect,
    )
    .option("--seqs <n>", "random sequences when no --prompt", parseIntOption("seqs"), 10)
    .option(
      "--half-length <n>",
      "length of the repeated half of each random sequence",
      parseIntOption("half-length"),
      20,
    )
    .option("--seed <n>", "seed of the random sequences", parseIntOption("seed"), 0)
    .option("--top <n>", "top heads to list per detector", parseIntOption("top"), 5)
    .option("--html <file>", "write a layer x head heatmap per detector")
    .option("--json", "print only JSON: {kind: number[][] [layer][head]}")
    .action(async (opts: HeadsOptions, cmd: Command) => {
      const prompts = opts.prompt ?? [];
      if (prompts.length)
        rejectIgnoredFlags(
          cmd,
          { seqs: "--seqs", halfLength: "--half-length", seed: "--seed" },
          "with --prompt (they shape the random sequences used without one)",
        );
      if (opts.json) rejectIgnoredFlags(cmd, { top: "--top" }, "with --json (which prints every head)");
      const kinds = opts.kind ?? [...KINDS];
      for (const k of kinds) {
        if (!(KINDS as readonly string[]).includes(k))
          throw new UsageError(`Unknown --kind "${k}": use ${KINDS.join(", ")}`);
      }
      checkOutputPaths([{ path: opts.html, flag: "--html", kind: "file" }]);
      const model = await loadModelFromOptions(opts);
      const { detectHeads, repeatedRandomTokens } = await import("../../analysis/head-detector.ts");
      const { nLayers: L, nHeads: H, nCtx, dVocab } = model.cfg;
      if (!prompts.length && 2 * opts.halfLength + 1 > nCtx) {
        throw new UsageError(
          `--half-length ${opts.halfLength} gives sequences longer than the context (${nCtx}): lower it`,
        );
      }
      const sequences = prompts.length
        ? prompts.map((p) => model.toTokens(p))
        : repeatedRandomTokens({
            nSeqs: opts.seqs,
            halfLength: opts.halfLength,
            seed: opts.seed,
            high: Math.min(dVocab, 50000),
            low: 100,
            bos: model.tokenizer.bosToken,
          });
      const result: Record<string, number[][]> = {};
      for (const kind of kinds) {
        const scores = detectHeads(model, sequences, kind as (typeof KINDS)[number], { excludeBos: true });
        result[kind] = nest(scores, [L, H]) as number[][];
      }
      if (opts.html) {
        const { writeHeatmapPage } = await import("../heatmap-page.ts");
        await writeHeatmapPage(
          opts.html,
          "circuitscope: head detection",
          kinds.map((kind) => ({
            heading: kind.replace("_", "-"),
            text: `Share of each head's attention (BOS excluded) that follows the ideal ${kind.replace("_", "-")} pattern, mean over ${sequences.length} sequences.`,
            heatmap: {
              title: `${kind} score`,
              rowLabels: Array.from({ length: L }, (_, l) => `L${l}`),
              colLabels: Array.from({ length: H }, (_, h) => `H${h}`),
              values: result[kind],
              rowTitle: "layer",
              colTitle: "head",
              valueTitle: "score",
            },
          })),
          [
            { label: "model", value: opts.model },
            {
              label: "sequences",
              value: prompts.length
                ? prompts
                : `${sequences.length} random token sequences repeated once (half length ${opts.halfLength}, seed ${opts.seed})`,
            },
            {
              label: "score",
              value: "share of each head's attention (BOS excluded) on the detector's ideal pattern",
            },
          ],
        );
        if (!opts.json) process.stderr.write(`wrote ${opts.html}\n`);
      }
      if (opts.json) {
        printJson(result);
        return;
      }
      for (const kind of kinds) {
        const ranked = largestCells(result[kind], opts.top);
        process.stdout.write(
          `${kind}: ${ranked.map((r) => `${headName(r.row, r.col)} ${r.value.toFixed(3)}`).join(", ")}\n`,
        );
      }
    });
}
