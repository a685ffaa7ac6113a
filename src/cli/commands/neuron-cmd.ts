import type { Command } from "commander";
import {
  addModelOptions,
  loadModelFromOptions,
  type ModelCliOptions,
  parseIntOption,
  printJson,
  UsageError,
} from "../common.ts";
import { checkOutputPaths } from "../output-paths.ts";

interface NeuronCliOptions extends ModelCliOptions {
  layer?: number;
  neuron?: number;
  index?: string;
  text?: string;
  html?: string;
  json?: boolean;
}

export function register(program: Command): void {
  addModelOptions(
    program
      .command("neuron")
      .description(
        "a neuron's page: top corpus examples, density, histogram, direct logit effect, activations on your text",
      ),
  )
    .option("-l, --layer <n>", "MLP layer", parseIntOption("layer"))
    .option("-n, --neuron <n>", "neuron in that layer's MLP", parseIntOption("neuron"))
    .option(
      "-i, --index <dir>",
      "neuron index built by `circuitscope index` (for top examples and statistics)",
    )
    .option("-t, --text <text>", "also show the neuron's activation on every token of this text")
    .option("--html <file>", "write the page as a self-contained HTML report")
    .option("--json", "print only the page data as JSON")
    .action(async (opts: NeuronCliOptions) => {
      if (opts.layer === undefined || opts.neuron === undefined) {
        throw new UsageError("Which neuron? Pass --layer L --neuron N, e.g. --layer 8 --neuron 2744");
      }
      const { NeuronIndex } = await import("../../neurons/neuron-index.ts");
      const { neuronPageData } = await import("../../neurons/neuron-page.ts");
      const index = opts.index ? NeuronIndex.open(opts.index) : null;
      checkOutputPaths([{ path: opts.html, flag: "--html", kind: "file" }]);
      const model = await loadModelFromOptions(opts);
      try {
        const page = neuronPageData(model, opts.layer, opts.neuron, {
          index,
          text: opts.text,
          modelName: opts.model,
        });
        if (opts.html) {
          const { writeNeuronReport } = await import("../../neurons/neuron-report.ts");
          writeNeuronReport(opts.html, page);
        }
        if (opts.json) {
          printJson(page);
          return;
        }
        const { formatNeuronPage } = await import("../../neurons/neuron-text.ts");
        process.stdout.write(formatNeuronPage(page));
        if (opts.html) process.stdout.write(`Wrote ${opts.html}\n`);
      } finally {
        model.dispose();
      }
    });
}
