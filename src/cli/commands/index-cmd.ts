import type { Command } from "commander";
import { signalExitCode, stoppedBy } from "../../util/interrupt.ts";
import {
  addModelOptions,
  loadModelFromOptions,
  type ModelCliOptions,
  nonNegativeIntOption,
  positiveIntOption,
  printJson,
  UsageError,
  withCtrlC,
} from "../common.ts";
import { checkOutputPaths } from "../output-paths.ts";
import { shellQuote } from "../scale-out.ts";

interface IndexCliOptions extends ModelCliOptions {
  corpus?: string;
  textField: string;
  layers?: string;
  maxTokens?: number;
  contextLen: number;
  topK: number;
  batchSize: number;
  checkpointEvery: number;
  out?: string;
  shard?: string;
  resume?: boolean;
  json?: boolean;
  sae?: string;
  transcoders?: string;
  bandSamples?: number;
  histMax?: number;
}

function parseLayers(text: string): number[] {
  return text.split(",").map((part) => {
    const n = Number(part.trim());
    if (part.trim() === "" || !Number.isInteger(n) || n < 0) {
      throw new UsageError(`Bad --layers "${text}": write layer numbers separated by commas, e.g. 0,5,8`);
    }
    return n;
  });
}

function positiveNumber(name: string) {
  return (value: string): number => {
    const x = Number(value);
    if (!(x > 0) || !Number.isFinite(x))
      throw new UsageError(`--${name} must be a number above 0, got ${value}`);
    return x;
  };
}

function defaultOutDir(model: string, corpus: string, sae: boolean): string {
  const base = (s: string) =>
    s
      .replace(/[/\\]+$/, "")
      .split(/[/\\]/)
      .pop()!
      .replace(/\.[^.]+$/, "");
  return `${sae ? "feature-index" : "neuron-index"}/${base(model)}-${base(corpus)}`;
}

/** The command line that continues this run: the same arguments plus --resume. */
function resumeCommand(): string {
  const args = process.argv.slice(2);
  return ["circuitscope", ...args.map(shellQuote), ...(args.includes("--resume") ? [] : ["--resume"])].join(
    " ",
  );
}

export function register(program: Command): void {
  addModelOptions(
    program
      .command("index")
      .description(
        "index MLP neurons (or, with --sae, SAE features) over a corpus: top-k examples, histogram and density per unit (a local Neuroscope / Neuronpedia)",
      ),
  )
    .option(
      "-c, --corpus <name|path>",
      "nlp-corpus, spam-assassin, sotu, a .txt file or directory, or a .jsonl file",
    )
    .option("--text-field <name>", "JSONL field holding the text", "text")
    .option("--layers <list>", "layers to index, e.g. 0,5,8 (default: all)")
    .option(
      "--sae <dir|owner/repo/folder|stories260k/folder>",
      "index this SAELens SAE's features at its hook instead of neurons (a feature index, for `feature` pages)",
    )
    .option(
      "--transcoders <dir|config.yaml>",
      "index a circuit-tracer transcoder set's features, every layer, on its feature input hook (a feature index, for `feature --transcoders` and graph pages)",
    )
    .option(
      "--band-samples <n>",
      "examples kept per activation-histogram bin, for quantile groups (default: 5 with --sae or --transcoders, none for neurons; 0: none, a smaller index)",
      nonNegativeIntOption("band-samples"),
    )
    .option(
      "--hist-max <x>",
      "upper edge of the activation histogram (default 9.5 for neurons; for --sae, 0 .. this in 100 bins, default 10)",
      positiveNumber("hist-max"),
    )
    .option(
      "--max-tokens <n>",
      "index only the corpus prefix of this many tokens",
      positiveIntOption("max-tokens"),
    )
    .option("--context-len <n>", "tokens per context, BOS included", positiveIntOption("context-len"), 64)
    .option("--top-k <n>", "examples kept per neuron", positiveIntOption("top-k"), 20)
    .option("--batch-size <n>", "contexts per forward pass", positiveIntOption("batch-size"), 8)
    .option(
      "--checkpoint-every <n>",
      "contexts between checkpoints",
      positiveIntOption("checkpoint-every"),
      512,
    )
    .option("-o, --out <dir>", "index directory (default neuron-index/MODEL-CORPUS)")
    .option(
      "--shard <i/n>",
      "index only shard i of n (0-based; auto: the Slurm array task, auto/N: the Kubernetes Indexed Job pod); merge the shards with index-merge",
    )
    .option("--resume", "continue an interrupted index in --out")
    .option("--json", "print only the final manifest as JSON")
    .action(async (opts: IndexCliOptions) => {
      if (!opts.corpus)
        throw new UsageError(
          "No corpus: pass --corpus nlp-corpus (or sotu, spam-assassin, a file or directory)",
        );
      const { openCorpus } = await import("../../corpus/sources.ts");
      const { corpusContexts } = await import("../../corpus/contexts.ts");
      const { resolveShard } = await import("../../util/shard.ts");
      const { buildIndex } = await import("../../neurons/build-index.ts");
      const { createProgress, progressShown } = await import("../../util/progress.ts");
      const source = openCorpus(opts.corpus, { textField: opts.textField });
      const shard = opts.shard ? resolveShard(opts.shard) : undefined;
      if (opts.bandSamples !== undefined && opts.bandSamples < 0)
        throw new UsageError(`--band-samples must be 0 or more, got ${opts.bandSamples}`);
      if (opts.sae && opts.layers) {
        throw new UsageError("--sae indexes the SAE's features at its hook: leave out --layers.");
      }
      if (opts.transcoders && (opts.sae || opts.layers)) {
        throw new UsageError("--transcoders indexes every layer of the set: leave out --sae and --layers.");
      }
      const features = opts.sae !== undefined || opts.transcoders !== undefined;
      const outDir = opts.out ?? defaultOutDir(opts.model, opts.corpus, features);
      checkOutputPaths([{ path: outDir, flag: "--out", kind: "index", resume: opts.resume }]);
      const { prepareSae, loadPreparedSae } = await import("../sae-options.ts");
      const pendingSae = await prepareSae({ sae: opts.sae, steer: [], ablate: [], offline: opts.offline });
      let model: Awaited<ReturnType<typeof loadModelFromOptions>>;
      let tcSet: import("../../graphs/transcoder-set.ts").TranscoderSet | null = null;
      if (opts.transcoders) {
        const { loadGraphInputs } = await import("./graph-cmd.ts");
        ({ set: tcSet, model } = await loadGraphInputs(opts));
      } else model = await loadModelFromOptions(opts);
      const sae = pendingSae ? await loadPreparedSae(pendingSae, model) : null;
      const { DEFAULT_HISTOGRAM } = await import("../../neurons/neuron-stats.ts");
      // Features are >= 0 and their scale is the dictionary's own: bins from 0, the top edge a flag.
      const histogram = features
        ? { lo: 0, hi: opts.histMax ?? 10, bins: 100 }
        : opts.histMax
          ? { ...DEFAULT_HISTOGRAM, hi: opts.histMax }
          : undefined;

      let total = opts.maxTokens ?? 0;
      if (progressShown(opts.json) && total === 0) {
        // Only for the bar's total: tokenizing is fast next to the model.
        const tok = model.tokenizer;
        const contexts = corpusContexts(source, {
          contextLen: opts.contextLen,
          encode: (t) => tok.encode(t),
          bos: tok.bosToken,
        });
        for (const c of contexts) total += c.tokens.length;
      }
      const bar = createProgress({
        label: "Indexing",
        total: Math.ceil(total / (shard?.count ?? 1)),
        quiet: opts.json,
        unit: "tokens",
      });
      let shown = 0;
      try {
        let stop: AbortSignal | undefined;
        const result = await withCtrlC((signal) => {
          stop = signal;
          return buildIndex(model, source, {
            outDir,
            modelName: opts.model,
            layers: opts.layers ? parseLayers(opts.layers) : undefined,
            ...(sae && opts.sae ? { sae: { sae, path: opts.sae } } : {}),
            ...(tcSet && opts.transcoders ? { transcoders: { set: tcSet, path: opts.transcoders } } : {}),
            // 0 keeps none (build-index reads 0 as absent): the bundled indexes stay small.
            bandSamples: opts.bandSamples ?? (features ? 5 : undefined),
            histogram,
            topK: opts.topK,
            contextLen: opts.contextLen,
            maxTokens: opts.maxTokens,
            textField: opts.textField,
            batchSize: opts.batchSize,
            checkpointEvery: opts.checkpointEvery,
            shard,
            resume: opts.resume,
            signal,
            onProgress: (p) => {
              bar.tick(p.tokens - shown);
              shown = p.tokens;
            },
          });
        });
        bar.stop();
        const m = result.manifest!;
        const stoppedByUser = stoppedBy(stop);
        if (stoppedByUser) process.exitCode = signalExitCode(stoppedByUser);
        if (!m.progress.complete) {
          // Also with --json: the hint goes to stderr, the manifest to stdout.
          process.stderr.write(
            `Stopped after ${m.progress.tokens} tokens; checkpoint saved in ${outDir}. Continue with:\n  ${resumeCommand()}\n`,
          );
        }
        if (opts.json) {
          printJson({ outDir, ...m, tokensPerSecond: result.tokensPerSecond });
        } else if (m.progress.complete && m.settings.transcoders) {
          const tc = m.settings.transcoders;
          process.stdout.write(
            `Indexed ${m.progress.tokens} tokens (${m.progress.contexts} contexts) for ${m.settings.layers.length} × ${tc.dTranscoder} transcoder features at ${tc.inputHook} ` +
              `into ${outDir} (${result.tokensPerSecond.toFixed(0)} tokens/s). View a feature with: ` +
              `circuitscope feature --model ${opts.model} --transcoders ${opts.transcoders} --index ${outDir} --layer ${m.settings.layers[0]} --feature 0\n`,
          );
        } else if (m.progress.complete && m.settings.sae) {
          process.stdout.write(
            `Indexed ${m.progress.tokens} tokens (${m.progress.contexts} contexts) for ${m.settings.sae.dSae} SAE features at ${m.settings.sae.hook} ` +
              `into ${outDir} (${result.tokensPerSecond.toFixed(0)} tokens/s). View a feature with: ` +
              `circuitscope feature --model ${opts.model} --sae ${opts.sae} --index ${outDir} --feature 0\n`,
          );
        } else if (m.progress.complete) {
          process.stdout.write(
            `Indexed ${m.progress.tokens} tokens (${m.progress.contexts} contexts) for ${m.settings.layers.length * m.settings.dMlp} neurons ` +
              `into ${outDir} (${result.tokensPerSecond.toFixed(0)} tokens/s). View a neuron with: ` +
              `circuitscope neuron --model ${opts.model} --index ${outDir} --layer ${m.settings.layers[0]} --neuron 0\n`,
          );
        }
      } finally {
        bar.stop();
        model.dispose();
      }
    });

  program
    .command("index-merge")
    .description("merge the shard indexes 0/n .. n-1/n of one corpus into the index a single run would give")
    .argument("<shards...>", "shard index directories")
    .requiredOption("-o, --out <dir>", "directory for the merged index")
    .option("--json", "print only the merged manifest as JSON")
    .action(async (shards: string[], opts: { out: string; json?: boolean }) => {
      checkOutputPaths([{ path: opts.out, flag: "--out", kind: "dir" }]);
      const { mergeIndexes, summarizeShards } = await import("../../neurons/merge-indexes.ts");
      const m = mergeIndexes(shards, opts.out);
      const perShard = summarizeShards(shards);
      if (opts.json) printJson({ outDir: opts.out, ...m, shards: perShard });
      else {
        const rows = perShard.map(
          (s) =>
            `  shard ${s.shard.index}/${s.shard.count}: ${s.tokens} tokens` +
            (s.seconds === null
              ? " (time not recorded)"
              : ` in ${s.seconds.toFixed(1)} s, ${s.tokensPerSecond} tokens/s`) +
            `  ${s.dir}\n`,
        );
        process.stdout.write(
          `Merged ${shards.length} shards (${m.progress.tokens} tokens) into ${opts.out}\n${rows.join("")}`,
        );
      }
    });
}
