import type { Command } from "commander";
import {
  addModelOptions,
  loadModelFromOptions,
  type ModelCliOptions,
  positiveIntOption,
  printJson,
  UsageError,
  withCtrlC,
} from "../common.ts";
import { saeCommand } from "./sae-train-cmd.ts";

interface SaeHarvestCliOptions extends ModelCliOptions {
  hook?: string;
  corpus?: string;
  textField: string;
  context?: number;
  tokens?: number;
  heldOutTokens: number;
  chunkTexts: number;
  shard?: string;
  out?: string;
  resume?: boolean;
  json?: boolean;
}

export function register(program: Command): void {
  addModelOptions(
    saeCommand(program)
      .command("harvest")
      .description(
        "harvest a hook's activations to disk for sae train --activations: safetensors chunks and a manifest, one shard of n with --shard i/n (Slurm: circuitscope slurm sae harvest …)",
      ),
    "stories260k",
  )
    .option("--hook <name>", "the hook to read, e.g. blocks.2.hook_resid_pre")
    .option("-c, --corpus <src>", "a .jsonl file (text field), a .txt file or folder, or a built-in corpus")
    .option("--text-field <name>", "JSONL field holding the text", "text")
    .option(
      "--context <n>",
      "tokens per text, BOS included (default: the model's context, at most 512)",
      positiveIntOption("context"),
    )
    .option(
      "--tokens <n>",
      "training activations to harvest at most (default: the whole corpus)",
      positiveIntOption("tokens"),
    )
    .option(
      "--held-out-tokens <n>",
      "held-out activations (every tenth text) to harvest at most, for the evaluation after training",
      positiveIntOption("held-out-tokens"),
      65_536,
    )
    .option(
      "--chunk-texts <n>",
      "texts per chunk file (one forward pass each)",
      positiveIntOption("chunk-texts"),
      16,
    )
    .option(
      "--shard <i/n>",
      "harvest only shard i of n (0-based; auto: the Slurm array task, auto/N: the Kubernetes Indexed Job pod); train on every shard with sae train --activations",
    )
    .option("-o, --out <dir>", "this shard's directory (new, or one sae harvest wrote, with --resume)")
    .option("--resume", "continue (or keep, when finished) the harvest in --out")
    .option("--json", "print the shard's manifest as JSON (and no progress bar)")
    .action(async (opts: SaeHarvestCliOptions) => {
      if (!opts.hook) throw new UsageError("No hook: pass --hook, e.g. --hook blocks.2.hook_resid_pre");
      if (!opts.corpus)
        throw new UsageError("No corpus: pass --corpus FILE.jsonl (e.g. one made by `corpus sample`)");
      if (!opts.out) throw new UsageError("No output: pass --out DIR (a new directory for this shard)");
      const { resolveShard } = await import("../../util/shard.ts");
      let shard: { index: number; count: number };
      try {
        shard = resolveShard(opts.shard ?? "0/1");
      } catch (err) {
        throw new UsageError((err as Error).message);
      }
      const { harvestDirProblem, harvestShard } = await import("../../sae-train/activation-shards.ts");
      // Settings are checked against an earlier run once the context is known (after the model loads).
      const early = harvestDirProblem(opts.out, { resume: opts.resume, shard });
      if (early) throw new UsageError(early);
      const { openCorpus } = await import("../../corpus/sources.ts");
      const corpus = openCorpus(opts.corpus, { textField: opts.textField });
      const model = await loadModelFromOptions(opts);
      const { validateHookName } = await import("../../model/hook-points.ts");
      try {
        try {
          validateHookName(opts.hook, model.cfg);
        } catch (err) {
          throw new UsageError((err as Error).message);
        }
        const settings = {
          model: opts.model,
          hook: opts.hook,
          corpus: corpus.name,
          context: opts.context ?? Math.min(model.cfg.nCtx, 512),
          tokens: opts.tokens ?? null,
          heldOutTokens: opts.heldOutTokens,
          chunkSequences: opts.chunkTexts,
        };
        const problem = harvestDirProblem(opts.out, { resume: opts.resume, shard, settings });
        if (problem) throw new UsageError(problem);
        const { createProgress, progressTo } = await import("../../util/progress.ts");
        const bar = createProgress({ label: "Harvesting", total: 0, quiet: opts.json, unit: "tokens" });
        const result = await withCtrlC((signal) =>
          harvestShard({
            model,
            corpus,
            settings,
            shard,
            out: opts.out!,
            resume: opts.resume,
            signal,
            onChunk: progressTo(bar),
          }),
        );
        bar.stop();
        const m = result.manifest;
        const rows = m.chunks.reduce((a, c) => a + c.rows, 0);
        if (!result.complete) {
          process.stderr.write(
            `Stopped after ${m.chunks.length} chunks (${rows} activations) in ${opts.out}: run the same command with --resume to continue.\n`,
          );
          process.exitCode = 130;
          return;
        }
        if (opts.json) printJson({ out: opts.out, chunksWritten: result.chunksWritten, ...m });
        else
          process.stdout.write(
            `${result.chunksWritten === 0 ? "Already harvested" : "Harvested"}: shard ${m.shard.index}/${m.shard.count}, ${rows} activations of ${opts.hook} ` +
              `(${m.chunks.length} chunks, ${m.seconds.toFixed(1)} s) in ${opts.out}. Train on every shard with: circuitscope sae train --activations DIR… --d-sae N --out SAE_DIR\n`,
          );
      } finally {
        model.dispose();
      }
    });
}
