import type { Command } from "commander";
import {
  addModelOptions,
  loadModelFromOptions,
  type ModelCliOptions,
  parseIntOption,
  printJson,
  UsageError,
  untilCtrlC,
} from "../common.ts";
import { checkOutputPaths } from "../output-paths.ts";

interface SampleCliOptions extends ModelCliOptions {
  tokens?: number;
  seed: number;
  temperature: number;
  out?: string;
  json?: boolean;
}

/** Said in the log and kept in every line: a sampled corpus is the model's own distribution. */
const PROVENANCE =
  "sampled from the model itself (its own distribution, reproducible offline; not its training data)";

export function register(program: Command): void {
  const corpus = program.command("corpus").description("make corpora for indexing and SAE training");
  addModelOptions(
    corpus
      .command("sample")
      .description(
        'write the model\'s own stories as JSONL ({"text": ...} per line), seeded and reproducible: an offline in-distribution corpus',
      ),
    "stories260k",
  )
    .option(
      "--tokens <n>",
      "generated tokens to reach (BOS and end-of-text not counted)",
      parseIntOption("tokens"),
    )
    .option(
      "--seed <n>",
      "corpus seed (story i is sampled with a seed made from it and i)",
      parseIntOption("seed"),
      0,
    )
    .option("-t, --temperature <t>", "sampling temperature", Number, 1)
    .option("-o, --out <file.jsonl>", "the JSONL file to write")
    .option("--json", "print only JSON")
    .action(async (opts: SampleCliOptions) => {
      if (opts.tokens === undefined || opts.tokens < 1)
        throw new UsageError("No token budget: pass --tokens N (N >= 1), e.g. --tokens 140000");
      if (!opts.out) throw new UsageError("No output: pass --out FILE.jsonl");
      if (!/\.(jsonl|ndjson)$/i.test(opts.out))
        throw new UsageError(`--out ${opts.out} should end in .jsonl (the corpus is JSON lines)`);
      if (!(opts.temperature > 0))
        throw new UsageError(`--temperature must be > 0 for sampling, got ${opts.temperature}`);
      checkOutputPaths([{ path: opts.out, flag: "--out", kind: "file" }]);
      const { sampleStories } = await import("../../corpus/sampled-stories.ts");
      const { writeFileAtomic } = await import("../../util/atomic-write.ts");
      const { createProgress } = await import("../../util/progress.ts");
      const model = await loadModelFromOptions(opts);
      const bar = createProgress({ label: "Sampling", total: opts.tokens, quiet: opts.json, unit: "tokens" });
      try {
        const result = await untilCtrlC("corpus sample", async (signal) => {
          const lines: string[] = [];
          let tokens = 0;
          for (const story of sampleStories(model, {
            tokens: opts.tokens!,
            seed: opts.seed,
            temperature: opts.temperature,
          })) {
            if (signal.aborted) throw new Error("aborted");
            lines.push(
              JSON.stringify({
                text: story.text,
                story: story.index,
                model: opts.model,
                seed: opts.seed,
                provenance: PROVENANCE,
              }),
            );
            tokens += story.tokens;
            bar.tick(story.tokens);
            // Let a Ctrl-C through between stories.
            await new Promise((r) => setImmediate(r));
          }
          writeFileAtomic(opts.out!, `${lines.join("\n")}\n`);
          return { stories: lines.length, tokens };
        });
        bar.stop();
        if (!result) return;
        const summary = {
          out: opts.out,
          model: opts.model,
          seed: opts.seed,
          ...result,
          provenance: PROVENANCE,
        };
        if (opts.json) printJson(summary);
        else
          process.stderr.write(
            `Wrote ${result.stories} stories (${result.tokens} tokens) to ${opts.out}: ${PROVENANCE}.\n`,
          );
      } finally {
        bar.stop();
        model.dispose();
      }
    });
}
