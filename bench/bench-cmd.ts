import type { Command } from "commander";
import { printJson, UsageError } from "../src/cli/common.ts";

interface BenchOptions {
  json?: boolean;
  backend: string;
  only?: string;
  ab?: string;
  rounds: string;
}

const GROUPS = [
  "engine",
  "patching",
  "attribution",
  "index",
  "circuits",
  "memory",
  "sae",
  "sae-train",
  "graph",
] as const;
type Group = (typeof GROUPS)[number];

/**
 * Benchmarks on a random checkpoint of GPT-2 small's shape built on the spot (no download needed).
 * Prints figures; the targets are in docs/benchmarks.md, never asserted in tests.
 */
export function register(program: Command): void {
  program
    .command("bench")
    .description(
      "benchmark kernels, forward, patching, attribution patching and indexing on a random GPT-2-small-shaped model",
    )
    .option("--backend <name>", "kernels to benchmark: onnx or reference", "onnx")
    .option("--only <groups>", `comma-separated subset of: ${GROUPS.join(", ")}`)
    .option("--json", "print only a flat JSON object of figures")
    .option(
      "--ab <checkout>",
      "compare with another checkout of circuitscope in one process, rounds interleaved (--only names workloads)",
    )
    .option("--rounds <n>", "rounds of --ab", "30")
    .action(async (opts: BenchOptions) => {
      if (opts.ab) return benchAbCommand(opts, opts.ab);
      const groups = new Set<Group>(
        opts.only
          ? opts.only.split(",").map((g) => {
              if (!(GROUPS as readonly string[]).includes(g))
                throw new UsageError(`Unknown bench group "${g}": use ${GROUPS.join(", ")}`);
              return g as Group;
            })
          : GROUPS,
      );
      const { getKernels } = await import("../src/tensor/select-kernels.ts");
      const { benchGemm, benchForward } = await import("./engine.ts");
      const { randomGpt2Small, peakRssMb } = await import("./gpt2-small.ts");
      const say = (line: string) => {
        if (!opts.json) process.stderr.write(`${line}\n`);
      };
      const kernels = getKernels(opts.backend);
      const figures: Record<string, number> = {};
      say(`backend: ${kernels.name}`);
      if (groups.has("engine")) {
        figures.gemm_gflops = benchGemm(kernels);
        say(`gemm [128x768]@[768x3072]: ${figures.gemm_gflops.toFixed(1)} GFLOP/s`);
        // First, so that the peak memory it reports is its own model's.
        say("building a random SmolLM-135M-shaped Llama ...");
        const { benchLlamaForward } = await import("./llama-bench.ts");
        Object.assign(figures, benchLlamaForward(kernels));
        say(
          `llama forward 1x8 ${figures.llama_forward_1x8_ms.toFixed(1)} ms, 8x128 ${figures.llama_forward_8x128_ms.toFixed(1)} ms, ` +
            `peak RSS ${figures.llama_peak_rss_mb.toFixed(0)} MB`,
        );
      }
      say("building a random GPT-2-small-shaped model ...");
      const t0 = performance.now();
      const model = randomGpt2Small({ backend: kernels });
      figures.build_model_s = (performance.now() - t0) / 1000;
      say(`built in ${figures.build_model_s.toFixed(1)} s`);
      if (groups.has("engine")) {
        Object.assign(figures, benchForward(model));
        say(
          `forward 1x8 ${figures.forward_1x8_ms.toFixed(1)} ms, 8x8 ${figures.forward_8x8_ms.toFixed(1)} ms, ` +
            `1x128 ${figures.forward_1x128_ms.toFixed(1)} ms, 8x128 ${figures.forward_8x128_ms.toFixed(1)} ms`,
        );
      }
      if (groups.has("patching")) {
        const { benchPatching } = await import("./patching.ts");
        Object.assign(figures, await benchPatching(model, { log: say }));
      }
      if (groups.has("attribution")) {
        const { benchAttribution } = await import("./attribution-patching.ts");
        Object.assign(figures, benchAttribution(model, { log: say }));
      }
      if (groups.has("index")) {
        const { benchIndexing } = await import("./indexing.ts");
        const r = await benchIndexing({ model });
        figures.index_tokens_per_s = r.tokensPerSecond;
        figures.index_stats_update_tokens_per_s = r.statsTokensPerSecond;
        say(
          `indexing ${r.neurons} neurons: ${r.tokensPerSecond.toFixed(0)} tokens/s (stats update alone ${r.statsTokensPerSecond.toFixed(0)} tokens/s)`,
        );
      }
      if (groups.has("circuits")) {
        const { benchCircuits } = await import("./circuits.ts");
        Object.assign(figures, await benchCircuits(model, { log: say }));
      }
      if (groups.has("memory")) {
        // Its own GPT-2-small-shaped checkpoint, loaded in a fresh child so the RSS figures are the load's.
        const { mkdtempSync, rmSync } = await import("node:fs");
        const { tmpdir } = await import("node:os");
        const { join } = await import("node:path");
        const { makeRandomCheckpoint } = await import("../src/weights/checkpoint.ts");
        const { GPT2_SMALL_CONFIG } = await import("./gpt2-small.ts");
        const { measureModelMemory, checkpointFloat32Bytes } = await import("./memory.ts");
        const dir = mkdtempSync(join(tmpdir(), "circuitscope-bench-memory-"));
        try {
          makeRandomCheckpoint(dir, GPT2_SMALL_CONFIG, { seed: 1 });
          const m = measureModelMemory(dir, await checkpointFloat32Bytes(dir), kernels.name);
          figures.load_peak_ratio = m.load_peak_ratio;
          figures.steady_ratio = m.steady_ratio;
          figures.memory_load_s = m.load_s;
          say(
            `memory (fresh child, ${kernels.name}): load peak ${m.load_peak_ratio.toFixed(2)}x and steady ` +
              `${m.steady_ratio.toFixed(2)}x the float32 weights (${(m.weight_bytes / 2 ** 20).toFixed(0)} MB)`,
          );
        } finally {
          rmSync(dir, { recursive: true, force: true });
        }
      }
      if (groups.has("sae")) {
        const { benchSaeFeatures } = await import("./sae-features.ts");
        Object.assign(figures, await benchSaeFeatures(kernels, { log: say }));
      }
      if (groups.has("sae-train")) {
        const { benchSaeTrain } = await import("./sae-train.ts");
        Object.assign(figures, await benchSaeTrain({ kernels }));
        say(
          `sae train (topk, d_in 64, d_sae 512, k 8, batch 4096): ${figures.sae_train_tokens_per_s.toFixed(0)} tokens/s ` +
            `(${figures.sae_train_tokens_per_cpu_s.toFixed(0)} per CPU-second); sparse loops instead: ` +
            `${figures.sae_train_sparse_tokens_per_s.toFixed(0)} (${figures.sae_train_sparse_tokens_per_cpu_s.toFixed(0)})`,
        );
      }
      if (groups.has("graph")) {
        const { benchGraph } = await import("./graph.ts");
        const { HookedTransformer } = await import("../src/model/hooked-transformer.ts");
        const stories = await HookedTransformer.fromPretrained("stories260k", { backend: kernels });
        Object.assign(figures, await benchGraph(model, { log: say, stories }));
        stories.dispose();
      }
      figures.peak_rss_mb = peakRssMb();
      say(`peak RSS ${figures.peak_rss_mb.toFixed(0)} MB`);
      model.dispose();
      if (opts.json) printJson(figures);
    });
}

async function benchAbCommand(opts: BenchOptions, other: string): Promise<void> {
  const { existsSync } = await import("node:fs");
  const { resolve } = await import("node:path");
  const { fileURLToPath } = await import("node:url");
  const { AB_WORKLOADS, benchAb } = await import("./ab.ts");
  const otherRoot = resolve(other);
  if (!existsSync(resolve(otherRoot, "bench/gpt2-small.ts")))
    throw new UsageError(
      `--ab ${other} is not a circuitscope checkout with bench/: give the root of one (e.g. a git worktree)`,
    );
  const rounds = Number(opts.rounds);
  if (!Number.isInteger(rounds) || rounds < 1)
    throw new UsageError(`--rounds ${opts.rounds}: use a whole number from 1`);
  const only = opts.only?.split(",").map((w) => {
    if (!(AB_WORKLOADS as readonly string[]).includes(w))
      throw new UsageError(`Unknown --ab workload "${w}": use ${AB_WORKLOADS.join(", ")}`);
    return w as (typeof AB_WORKLOADS)[number];
  });
  const thisRoot = resolve(fileURLToPath(new URL("..", import.meta.url)));
  const figures = await benchAb({
    otherRoot,
    thisRoot,
    rounds,
    only,
    log: opts.json ? undefined : (line) => process.stderr.write(`${line}\n`),
  });
  if (opts.json) printJson(figures);
}
