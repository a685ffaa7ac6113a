import { existsSync, readFileSync, statSync } from "node:fs";
import { dirname, resolve } from "node:path";
import type { Command } from "commander";
import { DEFAULT_COMPARE_TOP } from "../../circuits/defaults.ts";
import type { CircuitResult, ScoreMethod } from "../../circuits/find-circuit.ts";
// Light (names only), like defaults.ts: the command's start stays quick.
import { edgeLabel, nodeLabel } from "../../circuits/graph.ts";
import type { HookedTransformer } from "../../model/hooked-transformer.ts";
import type { CircuitGraphData } from "../../viz/circuit-graph.ts";
import {
  addModelOptions,
  addPairOptions,
  loadModelFromOptions,
  type ModelCliOptions,
  parseIntOption,
  prependBosOption,
  printJson,
  rejectIgnoredFlags,
  UsageError,
  untilCtrlC,
} from "../common.ts";

interface CircuitOptions extends ModelCliOptions {
  clean: string[];
  corrupted: string[];
  answer?: string;
  wrong?: string;
  prompts?: string;
  group?: string;
  method: string;
  igSteps: number;
  topN?: number;
  faithfulness?: number;
  compareTop: number;
  keep?: string;
  json?: boolean;
  html?: string;
  svg?: string;
  out?: string;
  prependBos: boolean;
  pairs?: string;
  shard?: string;
  resume?: boolean;
}

const METHODS = ["eap", "eap-ig", "exact"];

export function register(program: Command): void {
  addPairOptions(
    addModelOptions(
      program
        .command("circuit")
        .description(
          "find a circuit of edges between heads, MLPs, the input and the logits (EAP, EAP-IG or exact scores), check its faithfulness, draw it",
        ),
    ),
  )
    .option(
      "--prompts <file>",
      "prompt pairs as JSON/JSONL with clean, corrupted, answer, wrong, group (the study's format)",
    )
    .option("--group <name>", "with --prompts: only the pairs of this group")
    .option("--method <m>", "edge scores: eap, eap-ig or exact", "eap-ig")
    .option(
      "--ig-steps <n>",
      "EAP-IG: points between corrupted and clean input",
      parseIntOption("ig-steps"),
      5,
    )
    .option(
      "--top-n <n>",
      "keep the top n edges by |score| (then pruned to input→logits paths)",
      parseIntOption("top-n"),
    )
    .option(
      "--faithfulness <f>",
      "keep the smallest top-n circuit reaching this faithfulness (default 0.8)",
      parseFloat,
    )
    .option(
      "--compare-top <n>",
      "exact scores for this many top edges, to check the estimate (0 = off)",
      parseIntOption("compare-top"),
      DEFAULT_COMPARE_TOP,
    )
    .option(
      "--keep <edges.json>",
      "evaluate this circuit (a JSON array of edge names) instead of finding one",
    )
    .option("--html <file>", "write the circuit page (interactive graph, faithfulness curve, estimate check)")
    .option("--svg <file>", "write the circuit graph as SVG")
    .option("--out <file>", "write the full result as JSON")
    .option(
      "--pairs <file>",
      "a file of prompt pairs (as --prompts): score every edge on each pair and write the scores and their mean over pairs; --out is then a directory",
    )
    .option(
      "--shard <i/n>",
      "--pairs: run only shard i of n of the pairs (auto: the Slurm array task, auto/N: the Kubernetes Indexed Job pod); merge with circuit-merge",
    )
    .option("--resume", "--pairs: keep a finished shard in --out (a re-run does nothing)")
    .addOption(prependBosOption())
    .option("--json", "print only JSON")
    .action(async (opts: CircuitOptions, cmd: Command) => {
      if (opts.pairs) return (await import("../circuit-pairs.ts")).runCircuitPairs(opts, cmd);
      rejectIgnoredFlags(cmd, { shard: "--shard", resume: "--resume" }, "without --pairs");
      if (!METHODS.includes(opts.method))
        throw new UsageError(`Unknown --method "${opts.method}": use eap, eap-ig or exact`);
      if (opts.topN !== undefined && opts.faithfulness !== undefined)
        throw new UsageError("Give --top-n N or --faithfulness F, not both");
      if (opts.topN !== undefined && opts.topN < 1)
        throw new UsageError(`--top-n must be at least 1, got ${opts.topN}`);
      const faithfulness = opts.topN === undefined ? (opts.faithfulness ?? 0.8) : undefined;
      if (faithfulness !== undefined && !(faithfulness > 0 && faithfulness <= 1.5))
        throw new UsageError(
          `--faithfulness must be a number in (0, 1.5], e.g. 0.8; got ${opts.faithfulness}`,
        );
      if (!(opts.igSteps >= 1)) throw new UsageError(`--ig-steps must be at least 1, got ${opts.igSteps}`);
      if (!(opts.compareTop >= 0))
        throw new UsageError(`--compare-top must be 0 or more, got ${opts.compareTop}`);
      for (const [flag, path] of [
        ["--html", opts.html],
        ["--svg", opts.svg],
        ["--out", opts.out],
      ] as const)
        if (path) checkOutputPath(flag, path);
      const keep = opts.keep ? readEdgeList(opts.keep) : null;
      const spec = await promptSpec(opts);

      const model = await loadModelFromOptions(opts);
      const { preparePairs, answerToken } = await import("../../patching/pairs.ts");
      const single = (text: string, flag: string) => {
        try {
          return answerToken(model, text, flag);
        } catch (e) {
          throw new UsageError((e as Error).message);
        }
      };
      let pairs: ReturnType<typeof preparePairs>;
      try {
        pairs = preparePairs(model, spec.clean, spec.corrupted, { prependBos: opts.prependBos });
      } catch (e) {
        throw new UsageError((e as Error).message);
      }
      const answer = spec.answer.map((a) => single(a, "answer"));
      const wrong = spec.wrong.map((w) => single(w, "wrong"));
      const { CircuitTask } = await import("../../circuits/circuit-task.ts");
      const task = new CircuitTask(model, { clean: pairs.clean, corrupted: pairs.corrupted, answer, wrong });

      if (keep) {
        const { evaluateEdges } = await import("../../circuits/find-circuit.ts");
        for (const name of keep) {
          try {
            task.graph.edgeIndex(name);
          } catch (e) {
            throw new UsageError(`${opts.keep}: ${(e as Error).message}`);
          }
        }
        const r = evaluateEdges(task, keep);
        if (opts.json) printJson(r);
        else
          process.stdout.write(
            `Circuit of ${keep.length} edges: logit diff ${r.metric.toFixed(4)} (clean ${r.clean.toFixed(4)}, corrupted ${r.corrupted.toFixed(4)}), faithfulness ${r.normalized === null ? "undefined (clean = corrupted)" : r.normalized.toFixed(3)}\n`,
          );
        return;
      }

      const { findCircuit } = await import("../../circuits/find-circuit.ts");
      const { createProgress } = await import("../../util/progress.ts");
      let progress: ReturnType<typeof createProgress> | null = null;
      let phase = "";
      let last = 0;
      let result: CircuitResult | null;
      try {
        result = await untilCtrlC("circuit", (signal) =>
          findCircuit(task, {
            method: opts.method as ScoreMethod,
            igSteps: opts.igSteps,
            topN: opts.topN,
            faithfulness,
            compareTop: opts.compareTop,
            signal,
            onProgress: (p, done, total) => {
              if (p !== phase) {
                progress?.stop();
                progress = createProgress({ label: `circuit: ${p}`, total, quiet: opts.json, unit: "runs" });
                phase = p;
                last = 0;
              }
              progress?.tick(done - last);
              last = done;
            },
          }),
        );
      } finally {
        (progress as ReturnType<typeof createProgress> | null)?.stop();
      }
      if (result === null) return;
      const { writeFileAtomic } = await import("../../viz/index.ts");
      const { circuitGraphData, circuitScoreLabel } = await import("../../viz/presets/circuit-figures.ts");
      if (opts.out) writeFileAtomic(opts.out, `${JSON.stringify(result)}\n`);
      const inputs = [
        `model: ${opts.model}`,
        `${pairs.clean.length} prompt pair(s)${opts.prompts ? ` from ${opts.prompts}${opts.group ? `, group ${opts.group}` : ""}` : ""}; first clean: ${JSON.stringify(spec.clean[0])}, corrupted: ${JSON.stringify(spec.corrupted[0])}`,
        `metric: logit(${JSON.stringify(spec.answer[0])}) − logit(${JSON.stringify(spec.wrong[0])}) at the final position, mean over pairs`,
        `scores: ${circuitScoreLabel(result)}`,
      ];
      if (opts.svg || opts.html) {
        const { circuitGraphSvg } = await import("../../viz/circuit-graph.ts");
        const graph = circuitGraphData(result, model.cfg.nLayers, opts.model);
        if (opts.svg) writeFileAtomic(opts.svg, circuitGraphSvg(graph));
        if (opts.html) await writePage(opts.html, result, graph, inputs, model, pairs.clean[0]);
      }
      if (opts.json) {
        printJson(result);
        return;
      }
      process.stdout.write(`${formatText(result, inputs)}\n`);
    });
}

function checkOutputPath(flag: string, path: string): void {
  const dir = dirname(resolve(path));
  if (!existsSync(dir) || !statSync(dir).isDirectory())
    throw new UsageError(
      `${flag} ${path}: the directory ${dir} does not exist; create it or choose another path`,
    );
  if (existsSync(path) && statSync(path).isDirectory())
    throw new UsageError(`${flag} ${path} is a directory; give a file name`);
}

function readEdgeList(path: string): string[] {
  let parsed: unknown;
  try {
    parsed = JSON.parse(readFileSync(path, "utf8"));
  } catch (e) {
    throw new UsageError(
      `--keep ${path}: cannot read it as JSON (${(e as Error).message}); give a JSON array of edge names, e.g. ["input->a0.h1<q>", "a0.h1->logits"]`,
    );
  }
  if (!Array.isArray(parsed) || parsed.some((x) => typeof x !== "string"))
    throw new UsageError(
      `--keep ${path}: expected a JSON array of edge names (strings), e.g. ["input->a0.h1<q>"]`,
    );
  return parsed as string[];
}

async function promptSpec(
  opts: CircuitOptions,
): Promise<{ clean: string[]; corrupted: string[]; answer: string[]; wrong: string[] }> {
  if (opts.prompts) {
    if (opts.clean.length || opts.corrupted.length)
      throw new UsageError("Give prompts either with --prompts FILE or with --clean/--corrupted, not both");
    // The study's prompt-file reader: one format for pairs files across commands.
    const { readPromptFile } = await import("../../studies/prompts.ts");
    let pairs: ReturnType<typeof readPromptFile>;
    try {
      pairs = readPromptFile(opts.prompts);
    } catch (e) {
      throw new UsageError((e as Error).message);
    }
    if (opts.group) {
      const groups = [...new Set(pairs.map((p) => p.group))];
      pairs = pairs.filter((p) => p.group === opts.group);
      if (pairs.length === 0)
        throw new UsageError(
          `--group "${opts.group}" has no pairs in ${opts.prompts}; groups there: ${groups.join(", ")}`,
        );
    }
    return {
      clean: pairs.map((p) => p.clean),
      corrupted: pairs.map((p) => p.corrupted),
      answer: pairs.map((p) => p.answer),
      wrong: pairs.map((p) => p.wrong),
    };
  }
  if (opts.clean.length === 0)
    throw new UsageError(
      "No prompts: give --clean TEXT --corrupted TEXT (repeatable) or --prompts pairs.jsonl",
    );
  if (opts.answer === undefined || opts.wrong === undefined)
    throw new UsageError(
      'The metric needs --answer TEXT and --wrong TEXT (single tokens, e.g. --answer " she" --wrong " he")',
    );
  const n = opts.clean.length;
  return {
    clean: opts.clean,
    corrupted: opts.corrupted,
    answer: new Array(n).fill(opts.answer),
    wrong: new Array(n).fill(opts.wrong),
  };
}

async function writePage(
  path: string,
  r: CircuitResult,
  graph: CircuitGraphData,
  inputs: string[],
  model: HookedTransformer,
  firstClean: number[],
): Promise<void> {
  const { figureToSvg } = await import("../../viz/index.ts");
  const { writeCircuitPage } = await import("../../viz/circuit-graph.ts");
  const { circuitSummary, faithfulnessCurve } = await import("../../viz/presets/circuit-figures.ts");
  const { headPatterns } = await import("../../analysis/head-patterns.ts");
  const headNames = [...new Set(graph.edges.flatMap((e) => [e.parent, e.child]))].filter((n) =>
    n.startsWith("a"),
  );
  const refs = headNames.map((h) => {
    const [, layer, head] = /^a(\d+)\.h(\d+)$/.exec(h) as RegExpExecArray;
    return { layer: Number(layer), head: Number(head) };
  });
  const patterns = headPatterns(model, firstClean, refs);
  writeCircuitPage(path, {
    graph,
    inputs,
    summary: circuitSummary(r),
    curveSvg: await figureToSvg(faithfulnessCurve(r, r.circuit.edges.length)),
    attention: {
      tokens: model.toStrTokens(firstClean),
      heads: Object.fromEntries(headNames.map((h, i) => [nodeLabel(h), patterns[i]])),
    },
    comparison: r.comparison?.edges ?? [],
  });
}

function formatText(r: CircuitResult, inputs: string[]): string {
  const lines = [...inputs];
  lines.push(
    `Logit difference: clean ${r.baseline.clean.toFixed(4)}, corrupted ${r.baseline.corrupted.toFixed(4)}`,
  );
  const c = r.circuit;
  lines.push(
    c.target !== null
      ? `Circuit (smallest top-n reaching ${c.target}${c.reached ? "" : ": NOT reached, showing all edges"}): ${c.edges.length} edges of ${r.edges.length}, metric ${c.metric.toFixed(4)}, faithfulness ${c.normalized.toFixed(3)}`
      : `Circuit (top ${c.topN}, pruned): ${c.edges.length} edges of ${r.edges.length}, metric ${c.metric.toFixed(4)}, faithfulness ${c.normalized.toFixed(3)}`,
  );
  lines.push("Faithfulness curve (top n by |score| → edges kept after pruning: faithfulness):");
  for (let i = 0; i < r.faithfulness.length; i += 6)
    lines.push(
      `  ${r.faithfulness
        .slice(i, i + 6)
        .map((p) => `${p.topN}→${p.edges}: ${p.normalized.toFixed(3)}`)
        .join("   ")}`,
    );
  lines.push("Top edges by |score|:");
  for (const e of r.edges.slice(0, 15))
    lines.push(
      `  ${edgeLabel(e.name).padEnd(28)} ${e.score.toFixed(5).padStart(10)}${e.exact !== undefined ? `  exact ${e.exact.toFixed(5)}` : ""}`,
    );
  if (r.comparison)
    lines.push(
      `Estimate vs exact on the top ${r.comparison.edges.length}: Pearson r ${r.comparison.correlation.toFixed(3)}, same sign ${r.comparison.sameSign}/${r.comparison.edges.length}` +
        (r.comparison.overrated.length
          ? `; ranked too high: ${r.comparison.overrated.map(edgeLabel).join(", ")}`
          : ""),
    );
  return lines.join("\n");
}
