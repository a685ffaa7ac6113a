import type { Command } from "commander";
import { headName } from "../../model/component-names.ts";
import { formatToken } from "../../tokenizer/format-token.ts";
import {
  addModelOptions,
  loadModelFromOptions,
  type ModelCliOptions,
  parseLayerIndexList,
  printJson,
  UsageError,
} from "../common.ts";
import { checkOutputPaths } from "../output-paths.ts";

interface AttentionOptions extends ModelCliOptions {
  prompt: string;
  heads?: string;
  html?: string;
  svgDir?: string;
  png?: boolean;
  json?: boolean;
}

export function register(program: Command): void {
  addModelOptions(
    program
      .command("attention")
      .description("attention patterns of chosen heads over a prompt (CircuitsVis-style view, HTML/SVG/PNG)"),
  )
    .requiredOption("-p, --prompt <text>", "the prompt")
    .option("--heads <list>", "heads as LAYER.HEAD, comma-separated, e.g. 7.11,10.1 (default: every head)")
    .option("--html <file>", "write a self-contained interactive HTML page")
    .option("--svg-dir <dir>", "write one static SVG per head (for papers)")
    .option("--png", "with --svg-dir, also write PNGs")
    .option("--json", "print only JSON: tokens and each head's [dest][src] pattern")
    .action(async (opts: AttentionOptions) => {
      if (opts.png && !opts.svgDir)
        throw new UsageError(
          "--png writes PNGs beside the SVGs of --svg-dir DIR: add --svg-dir, or drop --png",
        );
      checkOutputPaths([
        { path: opts.html, flag: "--html", kind: "file" },
        { path: opts.svgDir, flag: "--svg-dir", kind: "dir" },
      ]);
      const model = await loadModelFromOptions(opts);
      const { nLayers, nHeads } = model.cfg;
      const heads = opts.heads
        ? parseLayerIndexList(opts.heads, "head")
        : Array.from({ length: nLayers * nHeads }, (_, i): [number, number] => [
            Math.floor(i / nHeads),
            i % nHeads,
          ]);
      const { headPatterns } = await import("../../analysis/head-patterns.ts");
      const tokens = model.toTokens(opts.prompt);
      const strTokens = model.toStrTokens(tokens);
      const rows = headPatterns(
        model,
        tokens,
        heads.map(([layer, head]) => ({ layer, head })),
      );
      const n = tokens.length;
      const patterns = heads.map(([l, h], i) => ({
        layer: l,
        head: h,
        label: headName(l, h),
        pattern: rows[i],
      }));
      if (opts.html || opts.svgDir) {
        const viz = await import("../../viz/index.ts");
        const figure = viz.attentionView({
          title: `Attention patterns: ${JSON.stringify(opts.prompt)}`,
          tokens: strTokens,
          heads: patterns.map((p) => ({ label: p.label, pattern: p.pattern })),
        });
        if (opts.html) {
          viz.writeHtmlReport(opts.html, {
            title: "circuitscope: attention",
            sections: [
              {
                heading: "Attention patterns",
                inputs: [
                  { label: "model", value: opts.model },
                  { label: "prompt", value: opts.prompt },
                  { label: "tokens", value: `${n} (${strTokens.map(viz.formatToken).join(" ")})` },
                  { label: "heads", value: `${patterns.length}: ${patterns.map((p) => p.label).join(", ")}` },
                ],
                text: "Rows are destinations (queries), columns sources (keys); each row sums to 1.",
                figures: [{ figure }],
              },
            ],
          });
          if (!opts.json) process.stderr.write(`wrote ${opts.html}\n`);
        }
        if (opts.svgDir) {
          for (const p of patterns) {
            const single = viz.attentionView({
              title: `Attention of ${p.label}`,
              tokens: strTokens,
              heads: [{ label: p.label, pattern: p.pattern }],
            });
            const files = await viz.writeFigureFiles(opts.svgDir, `attention-${p.label}`, single, {
              png: opts.png,
            });
            if (!opts.json) process.stderr.write(`wrote ${files.join(", ")}\n`);
          }
        }
      }
      if (opts.json) {
        printJson({ tokens, strTokens, heads: patterns });
        return;
      }
      if (!opts.html && !opts.svgDir) {
        for (const p of patterns) {
          const last = p.pattern[n - 1];
          const top = last
            .map((v, j) => [v, j] as const)
            .sort((a, b) => b[0] - a[0])
            .slice(0, 3)
            .map(([v, j]) => `${formatToken(strTokens[j])}@${j} ${(v * 100).toFixed(1)}%`);
          process.stdout.write(`${p.label}: final token attends to ${top.join(", ")}\n`);
        }
      }
    });
}
