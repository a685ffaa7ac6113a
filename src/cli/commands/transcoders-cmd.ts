/**
 * `transcoders eval`: a circuit-tracer transcoder set on a corpus — each layer's explained variance, L0 and
 * dead share, and the cross-entropy with every MLP output replaced by its transcoder (src/graphs/transcoder-eval.ts).
 * Training a set is `sae train --input-hook … --output-hook … --layers all`.
 */
import type { Command } from "commander";
import {
  addModelOptions,
  loadModelFromOptions,
  type ModelCliOptions,
  positiveIntOption,
  printJson,
  UsageError,
} from "../common.ts";

interface TranscodersEvalOptions extends ModelCliOptions {
  transcoders?: string;
  corpus?: string;
  textField: string;
  context: number;
  maxTexts?: number;
  json?: boolean;
}

export function register(program: Command): void {
  const transcoders = program
    .command("transcoders")
    .description("circuit-tracer transcoder sets (train one with `sae train --input-hook … --layers all`)");
  addModelOptions(
    transcoders
      .command("eval")
      .description(
        "per-layer explained variance, L0 and dead share, and cross-entropy with every MLP replaced by its transcoder (and zero-ablated), with the CE loss score",
      ),
    "stories260k",
  )
    .option("--transcoders <dir>", "a transcoder set: a directory holding config.yaml, or the config file")
    .option(
      "-c, --corpus <name|path>",
      "nlp-corpus, spam-assassin, sotu, a .txt file or directory, or a .jsonl file (one text per line)",
    )
    .option("--text-field <name>", "JSONL field holding the text", "text")
    .option(
      "--context <n>",
      "tokens per text, BOS included (longer texts are cut; at least 2)",
      positiveIntOption("context"),
      128,
    )
    .option(
      "--max-texts <n>",
      "evaluate only the first n texts of the corpus",
      positiveIntOption("max-texts"),
    )
    .option(
      "--json",
      "print only JSON: tokens, ce_loss_clean, ce_loss_with_transcoders, ce_loss_zero_ablation, ce_loss_score, layers[{layer, l0, explained_variance, dead_fraction}]",
    )
    .action(async (opts: TranscodersEvalOptions) => {
      if (!opts.transcoders)
        throw new UsageError(
          "No transcoders: pass --transcoders DIR (a circuit-tracer set with config.yaml)",
        );
      if (!opts.corpus)
        throw new UsageError("No corpus: pass --corpus FILE (a .jsonl with a text field, .txt, ...)");
      if (opts.context < 2)
        throw new UsageError(`--context must be at least 2 (BOS and one token), got ${opts.context}`);
      const { loadTranscoderSet } = await import("../../graphs/transcoder-set.ts");
      let set: Awaited<ReturnType<typeof loadTranscoderSet>>;
      try {
        set = await loadTranscoderSet(opts.transcoders);
      } catch (err) {
        throw new UsageError((err as Error).message);
      }
      const { openCorpus } = await import("../../corpus/sources.ts");
      const source = openCorpus(opts.corpus, { textField: opts.textField });
      const model = await loadModelFromOptions(opts);
      try {
        const { validateHookName } = await import("../../model/hook-points.ts");
        try {
          for (const h of [set.featureInputHook, set.featureOutputHook])
            validateHookName(`blocks.0.${h}`, model.cfg);
        } catch (err) {
          throw new UsageError(`The set's hooks do not fit ${opts.model}: ${(err as Error).message}`);
        }
        if (set.transcoders.length !== model.cfg.nLayers || set.transcoders[0].dModel !== model.cfg.dModel)
          throw new UsageError(
            `The set has ${set.transcoders.length} layers of d_model ${set.transcoders[0].dModel}; ${opts.model} has ${model.cfg.nLayers} of ${model.cfg.dModel}: pass the model the set was trained on with --model`,
          );
        const { evaluateTranscoderSet } = await import("../../graphs/transcoder-eval.ts");
        const { runCorpusEval } = await import("../corpus-eval.ts");
        const result = await runCorpusEval("transcoders eval", source, opts, (texts, signal, onBatch) =>
          evaluateTranscoderSet(model, set, texts, { context: opts.context, signal, onBatch }),
        );
        if (!result) return;
        if (opts.json) {
          printJson(result);
          return;
        }
        const lines = [
          `tokens              ${result.tokens}`,
          `CE clean            ${result.ce_loss_clean.toFixed(4)}`,
          `CE with transcoders ${result.ce_loss_with_transcoders.toFixed(4)}  (every ${set.featureOutputHook} replaced)`,
          `CE zero-ablated     ${result.ce_loss_zero_ablation.toFixed(4)}`,
          `CE loss score       ${result.ce_loss_score.toFixed(4)}`,
          "layer  explained variance  L0      dead",
          ...result.layers.map(
            (r) =>
              `${String(r.layer).padStart(5)}  ${r.explained_variance.toFixed(4).padStart(18)}  ${r.l0.toFixed(2).padStart(6)}  ${(r.dead_fraction * 100).toFixed(1)} %`,
          ),
        ];
        process.stdout.write(`${lines.join("\n")}\n`);
      } finally {
        model.dispose();
      }
    });
}
