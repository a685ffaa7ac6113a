import type { Command } from "commander";
import { printJson } from "../common.ts";
import { checkOutputPaths } from "../output-paths.ts";

interface DownloadOptions {
  revision?: string;
  cacheDir?: string;
  endpoint?: string;
  token?: string;
  offline?: boolean;
  json?: boolean;
}

export function register(program: Command): void {
  program
    .command("download")
    .description(
      "download a checkpoint (GPT-2, Llama family, GPT-NeoX/Pythia or Gemma 2 and 3) into the Hugging Face cache (reused by Python tools too)",
    )
    .argument(
      "<model>",
      "hub id: gpt2, distilgpt2, gpt2-medium, HuggingFaceTB/SmolLM2-135M, TinyLlama/TinyLlama-1.1B-Chat-v1.0, EleutherAI/pythia-70m, ..., or owner/name",
    )
    .option("--revision <rev>", "branch, tag or commit", "main")
    .option("--cache-dir <dir>", "cache root (default: HF_HUB_CACHE, $HF_HOME/hub, ~/.cache/huggingface/hub)")
    .option("--endpoint <url>", "hub URL (default: HF_ENDPOINT or https://huggingface.co)")
    .option("--token <token>", "access token (default: HF_TOKEN or the saved token file)")
    .option("--offline", "only check the cache")
    .option("--json", "print only JSON")
    .action(async (model: string, opts: DownloadOptions) => {
      checkOutputPaths([{ path: opts.cacheDir, flag: "--cache-dir", kind: "dir" }]);
      const { downloadModel } = await import("../../hub/resolve.ts");
      const dir = await downloadModel(model, {
        revision: opts.revision,
        cacheDir: opts.cacheDir,
        endpoint: opts.endpoint,
        token: opts.token,
        offline: opts.offline,
        progress: !opts.json,
      });
      if (opts.json) printJson({ model, dir });
      else process.stdout.write(`${dir}\n`);
    });
}
