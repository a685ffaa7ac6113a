import type { Command } from "commander";
import { printJson } from "../common.ts";

interface BenchOptions {
  json?: boolean;
  backend: string;
}

/**
 * Benchmarks on a random checkpoint of GPT-2 small's shape built on the spot (no download needed).
 * Prints figures; targets are documented in docs/benchmarks.md, not asserted.
 */
export function register(program: Command): void {
  program
    .command("bench")
    .description("benchmark kernels and the forward pass on a random GPT-2-small-shaped checkpoint")
    .option("--backend <name>", "kernels to benchmark: onnx or reference", "onnx")
    .option("--json", "print only a flat JSON object of figures")
    .action(async (opts: BenchOptions) => {
      const { getKernels } = await import("../../tensor/select-kernels.ts");
      const { benchGemm, benchForward } = await import("../../bench/engine-bench.ts");
      const { randomGpt2Small, peakRssMb } = await import("../../bench/gpt2-small.ts");
      const say = (line: string) => {
        if (!opts.json) process.stderr.write(`${line}\n`);
      };
      const kernels = getKernels(opts.backend);
      const figures: Record<string, number> = {};
      say(`backend: ${kernels.name}`);
      figures.gemm_gflops = benchGemm(kernels);
      say(`gemm [128x768]@[768x3072]: ${figures.gemm_gflops.toFixed(1)} GFLOP/s`);
      say("building a random GPT-2-small-shaped checkpoint ...");
      const t0 = performance.now();
      const model = randomGpt2Small({ backend: kernels });
      figures.load_s = (performance.now() - t0) / 1000;
      figures.load_peak_rss_mb = peakRssMb();
      say(
        `built + loaded in ${figures.load_s.toFixed(1)} s, peak RSS ${figures.load_peak_rss_mb.toFixed(0)} MB`,
      );
      Object.assign(figures, benchForward(model));
      say(
        `forward 1x8 ${figures.forward_1x8_ms.toFixed(1)} ms, 8x8 ${figures.forward_8x8_ms.toFixed(1)} ms, ` +
          `1x128 ${figures.forward_1x128_ms.toFixed(1)} ms, 8x128 ${figures.forward_8x128_ms.toFixed(1)} ms`,
      );
      figures.peak_rss_mb = peakRssMb();
      say(`peak RSS ${figures.peak_rss_mb.toFixed(0)} MB`);
      if (opts.json) printJson(figures);
      else printJson(figures);
    });
}
