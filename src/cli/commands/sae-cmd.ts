/**
 * `sae features` (an SAE's feature activations on a prompt), `sae eval` (its quality on a corpus) and
 * `sae patch` (every feature at every position of a clean/corrupted pair, exact and attribution).
 * Other `sae` subcommands may live in their own command modules: `saeCommand(program)` finds or makes
 * the parent command.
 */
import type { Command } from "commander";
import type { PatchResult } from "../../patching/types.ts";
import { formatToken } from "../../tokenizer/format-token.ts";
import {
  addModelOptions,
  addPairOptions,
  loadModelFromOptions,
  type ModelCliOptions,
  parseIntOption,
  printJson,
  UsageError,
} from "../common.ts";
import { addSaeOptions, loadPreparedSae, prepareSae, type SaeCliOptions } from "../sae-options.ts";

/** The `sae` parent command (made once, whichever command module asks first). */
export function saeCommand(program: Command): Command {
  return (
    program.commands.find((c) => c.name() === "sae") ??
    program.command("sae").description("sparse autoencoders (SAELens format): features, evaluation")
  );
}

interface FeaturesOptions extends ModelCliOptions, SaeCliOptions {
  prompt?: string;
  top: number;
  json?: boolean;
}

interface PatchOptions extends ModelCliOptions, SaeCliOptions {
  clean: string[];
  corrupted: string[];
  answer?: string;
  wrong?: string;
  method: string;
  top: number;
  json?: boolean;
}

interface EvalOptions extends ModelCliOptions, SaeCliOptions {
  corpus?: string;
  textField: string;
  context: number;
  maxTexts?: number;
  json?: boolean;
}

const positive = (name: string) => (v: string) => {
  const n = parseIntOption(name)(v);
  if (n < 1) throw new UsageError(`--${name} must be 1 or more, got ${n}`);
  return n;
};

function requireSae(opts: SaeCliOptions): void {
  if (!opts.sae) throw new UsageError("No SAE: pass --sae DIR (an SAELens directory) or owner/repo/FOLDER");
}

export function register(program: Command): void {
  const sae = saeCommand(program);

  addSaeOptions(
    addModelOptions(
      sae
        .command("features")
        .description("the SAE's feature activations at every position of a prompt (BOS included)"),
    ),
    { edits: false },
  )
    .option("-p, --prompt <text>", "the prompt")
    .option("-k, --top <k>", "features shown per token (without --json)", positive("top"), 5)
    .option("--json", 'print only JSON: {"tokens", "hook", "activations": [[d_sae numbers] per position]}')
    .action(async (opts: FeaturesOptions) => {
      requireSae(opts);
      if (opts.prompt === undefined) throw new UsageError("No prompt: pass --prompt TEXT");
      const pending = (await prepareSae(opts))!;
      const model = await loadModelFromOptions(opts);
      const loaded = await loadPreparedSae(pending, model);
      const { promptFeatures } = await import("../../sae/evaluate.ts");
      const { tokens, activations } = promptFeatures(model, loaded, opts.prompt);
      const d = loaded.dSae;
      const rows = tokens.map((_, p) => activations.subarray(p * d, (p + 1) * d));
      if (opts.json) {
        printJson({ tokens, hook: loaded.cfg.hookName, activations: rows.map((r) => Array.from(r)) });
        return;
      }
      const strs = model.toStrTokens(tokens);
      const lines = [`${loaded.cfg.hookName}: top ${opts.top} features per token (feature:activation)`];
      rows.forEach((row, p) => {
        const top = [...row.keys()]
          .filter((j) => row[j] !== 0)
          .sort((a, b) => row[b] - row[a] || a - b)
          .slice(0, opts.top);
        const shown = top.length
          ? top.map((j) => `${j}:${row[j].toFixed(3)}`).join("  ")
          : "(no feature fires)";
        lines.push(`${String(p).padStart(4)}  ${formatToken(strs[p]).padEnd(14)}  ${shown}`);
      });
      process.stdout.write(`${lines.join("\n")}\n`);
    });

  addSaeOptions(
    addModelOptions(
      sae
        .command("eval")
        .description(
          "L0, explained variance, cross-entropy with the SAE spliced in (and zero-ablated), CE score and dead share over a corpus",
        ),
    ),
    { edits: false },
  )
    .option(
      "-c, --corpus <name|path>",
      "nlp-corpus, spam-assassin, sotu, a .txt file or directory, or a .jsonl file (one text per line)",
    )
    .option("--text-field <name>", "JSONL field holding the text", "text")
    .option("--context <n>", "tokens per text, BOS included (longer texts are cut)", positive("context"), 128)
    .option("--max-texts <n>", "evaluate only the first n texts of the corpus", positive("max-texts"))
    .option(
      "--json",
      "print only JSON: l0, explained_variance, ce_loss_clean, ce_loss_with_sae, ce_loss_zero_ablation, ce_loss_score, dead_fraction, tokens",
    )
    .action(async (opts: EvalOptions) => {
      requireSae(opts);
      if (!opts.corpus)
        throw new UsageError("No corpus: pass --corpus FILE (a .jsonl with a text field, .txt, ...)");
      if (opts.context < 2)
        throw new UsageError(`--context must be at least 2 (BOS and one token), got ${opts.context}`);
      const { openCorpus } = await import("../../corpus/sources.ts");
      const source = openCorpus(opts.corpus, { textField: opts.textField });
      const pending = (await prepareSae(opts))!;
      const model = await loadModelFromOptions(opts);
      const loaded = await loadPreparedSae(pending, model);
      const { evaluateSae } = await import("../../sae/evaluate.ts");
      const { runCorpusEval } = await import("../corpus-eval.ts");
      const result = await runCorpusEval("sae eval", source, opts, (texts, signal, onBatch) =>
        evaluateSae(model, loaded, texts, { context: opts.context, signal, onBatch }),
      );
      if (!result) return;
      if (opts.json) {
        printJson(result);
        return;
      }
      const rows: [string, string][] = [
        ["hook", loaded.cfg.hookName],
        ["tokens", String(result.tokens)],
        ["L0", result.l0.toFixed(3)],
        ["explained variance", result.explained_variance.toFixed(4)],
        ["CE clean", result.ce_loss_clean.toFixed(4)],
        ["CE with SAE", result.ce_loss_with_sae.toFixed(4)],
        ["CE zero-ablated", result.ce_loss_zero_ablation.toFixed(4)],
        ["CE loss score", result.ce_loss_score.toFixed(4)],
        ["dead features", `${(result.dead_fraction * 100).toFixed(2)}%`],
      ];
      process.stdout.write(`${rows.map(([k, v]) => `${k.padEnd(20)}${v}`).join("\n")}\n`);
    });

  addSaeOptions(
    addPairOptions(
      addModelOptions(
        sae
          .command("patch")
          .description(
            "patch every SAE feature at every position from a clean into a corrupted prompt: exact and attribution (normalised logit difference)",
          ),
      ),
    ),
    { edits: false },
  )
    .option("--method <m>", "exact, attribution or both", "both")
    .option("-k, --top <k>", "cells shown (without --json)", positive("top"), 10)
    .option(
      "--json",
      "print only JSON: {hook, tokens, axes, shape, clean, corrupted, exact, attribution} ([pos][feature])",
    )
    .action(async (opts: PatchOptions) => {
      requireSae(opts);
      if (opts.clean.length !== 1 || opts.corrupted.length !== 1) {
        throw new UsageError("sae patch takes one pair: --clean TEXT --corrupted TEXT");
      }
      if (!opts.answer || !opts.wrong) throw new UsageError("Pass --answer TOKEN and --wrong TOKEN");
      const methods = { both: ["exact", "attribution"], exact: ["exact"], attribution: ["attribution"] }[
        opts.method
      ] as ("exact" | "attribution")[] | undefined;
      if (!methods) throw new UsageError(`--method ${opts.method}: use exact, attribution or both`);
      const pending = (await prepareSae(opts))!;
      const model = await loadModelFromOptions(opts);
      const loaded = await loadPreparedSae(pending, model);
      const { answerToken } = await import("../../patching/pairs.ts");
      const { activationPatching } = await import("../../patching/activation-patching.ts");
      const { attributionPatching } = await import("../../patching/attribution-patching.ts");
      // The features target of `patch`, one pair: the same sweep, printed per [pos][feature].
      const sweep = {
        clean: opts.clean,
        corrupted: opts.corrupted,
        answers: {
          answer: answerToken(model, opts.answer, "--answer"),
          wrong: answerToken(model, opts.wrong, "--wrong"),
        },
        target: { kind: "features", sae: loaded } as const,
      };
      const exact = methods.includes("exact") ? await activationPatching(model, sweep) : null;
      const attribution = methods.includes("attribution") ? attributionPatching(model, sweep) : null;
      const r = (exact ?? attribution)!;
      const [P, d] = r.shape;
      const nested = (v: PatchResult | null) =>
        v && Array.from({ length: P }, (_, p) => Array.from(v.values.subarray(p * d, (p + 1) * d)));
      const strs = model.toStrTokens(opts.clean[0]);
      if (opts.json) {
        printJson({
          hook: loaded.cfg.hookName,
          tokens: strs,
          axes: r.axes,
          shape: r.shape,
          clean: r.clean,
          corrupted: r.corrupted,
          exact: nested(exact),
          attribution: nested(attribution),
        });
        return;
      }
      const key = r.values;
      const top = [...key.keys()]
        .sort((a, b) => Math.abs(key[b]) - Math.abs(key[a]) || a - b)
        .slice(0, opts.top);
      const lines = [
        `${loaded.cfg.hookName}: logit difference clean ${r.clean.toFixed(3)}, corrupted ${r.corrupted.toFixed(3)}; ` +
          `${P * d} cells (features equal in both prompts are 0 without a run)`,
        "   pos  token           feature       exact  attribution",
      ];
      for (const i of top) {
        const p = Math.floor(i / d);
        const show = (v: PatchResult | null) => (v ? v.values[i].toFixed(4) : "-").padStart(12);
        lines.push(
          `${String(p).padStart(6)}  ${formatToken(strs[p]).padEnd(14)}  ${String(i % d).padStart(7)}${show(exact)}${show(attribution)}`,
        );
      }
      process.stdout.write(`${lines.join("\n")}\n`);
    });
}
