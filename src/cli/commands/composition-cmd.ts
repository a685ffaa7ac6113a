import type { Command } from "commander";
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

interface CompositionOptions extends ModelCliOptions {
  mode?: string[];
  top: number;
  html?: string;
  json?: boolean;
}

const MODES = ["Q", "K", "V"] as const;

/**
 * TransformerLens-style composition scores between every pair of heads (earlier head's OV circuit
 * feeding a later head's Q, K or V), from the factored weights: no prompt needed.
 */
export function register(program: Command): void {
  addModelOptions(
    program
      .command("composition")
      .description(
        "Q/K/V-composition scores between every pair of heads (||W_A W_B||_F / (||W_A||_F ||W_B||_F))",
      ),
  )
    .option("--mode <mode>", "Q, K or V (repeatable; default all three)", collect)
    .option("--top <n>", "strongest pairs to list per mode", parseIntOption("top"), 10)
    .option("--html <file>", "write a heatmap per mode: sender head (rows) x receiver head (columns)")
    .option("--json", "print only JSON: {mode: number[][] [senderLayer*H+head][receiverLayer*H+head]}")
    .action(async (opts: CompositionOptions, cmd: Command) => {
      if (opts.json) rejectIgnoredFlags(cmd, { top: "--top" }, "with --json (which prints every pair)");
      const modes = (
        opts.mode ? opts.mode.map((m) => m.toUpperCase()) : [...MODES]
      ) as (typeof MODES)[number][];
      for (const m of modes) {
        if (!(MODES as readonly string[]).includes(m))
          throw new UsageError(`Unknown --mode "${m}": use Q, K or V`);
      }
      checkOutputPaths([{ path: opts.html, flag: "--html", kind: "file" }]);
      const model = await loadModelFromOptions(opts);
      const { compositionScores } = await import("../../analysis/circuits.ts");
      const { nLayers: L, nHeads: H } = model.cfg;
      const N = L * H;
      const labels = Array.from({ length: N }, (_, i) => `L${Math.floor(i / H)}H${i % H}`);
      const result: Record<string, number[][]> = {};
      for (const m of modes) {
        const s = compositionScores(model, m);
        result[m] = nest(s, [N, N]) as number[][];
      }
      if (opts.html) {
        const { writeHeatmapPage } = await import("../heatmap-page.ts");
        const reads = { Q: "query", K: "key", V: "value" } as const;
        await writeHeatmapPage(
          opts.html,
          "circuitscope: composition scores",
          modes.map((m) => ({
            heading: `${m}-composition`,
            text: `How much each earlier head's OV circuit (row) writes into the subspace a later head's ${reads[m]} reads (column). Pairs not in layer order (sender not before receiver) are not computed (grey).`,
            heatmap: {
              title: `${m}-composition score`,
              rowLabels: labels,
              colLabels: labels,
              // Pairs not in layer order have no composition: drawn "not computed", not as a score of 0.
              values: result[m].map((row, i) =>
                row.map((v, j) => (Math.floor(i / H) < Math.floor(j / H) ? v : null)),
              ),
              rowTitle: "sender head",
              colTitle: "receiver head",
              valueTitle: "score",
              scale: "sequential",
            },
          })),
          [
            { label: "model", value: opts.model },
            { label: "modes", value: modes.join(", ") },
            { label: "heads", value: `${N} (${L} layers × ${H} heads), weights only: no prompt` },
          ],
        );
        if (!opts.json) process.stderr.write(`wrote ${opts.html}\n`);
      }
      if (opts.json) {
        printJson(result);
        return;
      }
      for (const m of modes) {
        const pairs = largestCells(result[m], opts.top, true); // 0 = pair not in layer order
        process.stdout.write(
          `${m}-composition: ${pairs.map((p) => `${labels[p.row]}→${labels[p.col]} ${p.value.toFixed(3)}`).join(", ")}\n`,
        );
      }
    });
}
