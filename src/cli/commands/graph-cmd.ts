import type { Command } from "commander";
import type { FrontEndGraph } from "../../graphs/graph-files.ts";
import { DEFAULT_EDGE_THRESHOLD, DEFAULT_NODE_THRESHOLD } from "../../graphs/prune.ts";
import type { TranscoderSet } from "../../graphs/transcoder-set.ts";
import type { HookedTransformer } from "../../model/hooked-transformer.ts";
import { progressTo } from "../../util/progress.ts";
import {
  addModelOptions,
  collect,
  loadModelFromOptions,
  type ModelCliOptions,
  parseIntOption,
  positiveIntOption,
  prependBosOption,
  printJson,
  rejectIgnoredFlags,
  UsageError,
  untilCtrlC,
} from "../common.ts";
import { checkOutputPaths } from "../output-paths.ts";

export interface GraphCliOptions extends ModelCliOptions {
  transcoders?: string;
  prompt?: string;
  target: string[];
  nodeThreshold: number;
  edgeThreshold: number;
  raw?: string;
  overwrite?: boolean;
  out?: string;
  html?: string;
  featurePages?: string;
  json?: boolean;
  slug: string;
  check: number;
  checkFreeze?: boolean;
  batchSize: number;
  prependBos: boolean;
  prompts?: string;
  shard?: string;
  rawEach?: boolean;
  resume?: boolean;
}

function thresholdOption(name: string) {
  return (value: string): number => {
    const x = Number(value);
    if (!(x >= 0 && x <= 1))
      throw new UsageError(
        `--${name} must be a number between 0 and 1 (a share of influence), got "${value}"`,
      );
    return x;
  };
}

export function register(program: Command): void {
  addModelOptions(
    program
      .command("graph")
      .description(
        "attribution graph of a prompt over transcoder features (circuit-tracer semantics): edges through the linearised model, pruning, replacement and completeness scores, front-end graph.json",
      ),
  )
    .option(
      "--transcoders <dir|config.yaml>",
      "the circuit-tracer transcoder set (config.yaml + one file per layer)",
    )
    .option("-p, --prompt <text>", "the prompt")
    .option(
      "--target <token>",
      "a logit to explain (one token, repeatable; the first is the target logit). Default: the top logits until p ≥ 0.95, at most 10",
      collect,
      [],
    )
    .option(
      "--node-threshold <x>",
      "keep the nodes holding this share of the influence",
      thresholdOption("node-threshold"),
      DEFAULT_NODE_THRESHOLD,
    )
    .option(
      "--edge-threshold <x>",
      "then keep the edges holding this share of the edge influence",
      thresholdOption("edge-threshold"),
      DEFAULT_EDGE_THRESHOLD,
    )
    .option("--raw <dir>", "write nodes.json and the unpruned adjacency.safetensors into this new directory")
    .option("--overwrite", "with --raw: replace a directory an earlier graph run wrote")
    .option(
      "--out <file>",
      "write the pruned graph in the circuit-tracer / Neuronpedia front-end schema (graph.json)",
    )
    .option("--html <file>", "write circuitscope's interactive graph page")
    .option(
      "--feature-pages <dir>",
      "with --html: write a page for each feature the graph keeps into this new directory (examples from the set's feature index DIR/feature-index when present); clicking a feature node opens its page",
    )
    .option("--slug <name>", "the graph's name in the front end", "circuitscope-graph")
    .option(
      "--check <k>",
      "ablate the top k features in the real model (transcoders spliced in, errors held) and print the target logit's change beside the graph's prediction",
      parseIntOption("check"),
      0,
    )
    .option("--check-freeze", "with --check: freeze attention patterns and norm scales as the graph does")
    .option("--batch-size <n>", "targets per backward pass", positiveIntOption("batch-size"), 32)
    .addOption(prependBosOption())
    .option(
      "--prompts <file>",
      'a file of prompts, one per line, or JSONL with "prompt" (and "target": a token or a list): one graph each; --out is then a directory (graphs/, index.json)',
    )
    .option(
      "--shard <i/n>",
      "--prompts: run only shard i of n of the prompts (auto: the Slurm array task, auto/N: the Kubernetes Indexed Job pod); merge with graph-merge",
    )
    .option("--raw-each", "--prompts: also write each prompt's --raw files, in OUT/raw/<k>/")
    .option("--resume", "--prompts: keep the graphs a shard in --out already wrote, and do the rest")
    .option("--json", "print only JSON (scores, sizes, kept nodes and edges, targets)")
    .action(async (opts: GraphCliOptions, cmd: Command) => {
      if (!opts.transcoders)
        throw new UsageError("Which transcoders? Pass --transcoders DIR (a circuit-tracer transcoder set).");
      if (opts.prompts) return (await import("../graph-prompts.ts")).runGraphPrompts(opts, cmd);
      rejectIgnoredFlags(
        cmd,
        { shard: "--shard", rawEach: "--raw-each", resume: "--resume" },
        "without --prompts",
      );
      if (opts.prompt === undefined || opts.prompt === "")
        throw new UsageError('No prompt: pass --prompt "TEXT"');
      if (!(opts.check >= 0)) throw new UsageError(`--check must be 0 or more, got ${opts.check}`);
      checkOutputPaths([
        { path: opts.raw, flag: "--raw", kind: "report", overwrite: opts.overwrite },
        { path: opts.out, flag: "--out", kind: "file" },
        { path: opts.html, flag: "--html", kind: "file" },
        { path: opts.featurePages, flag: "--feature-pages", kind: "report", overwrite: opts.overwrite },
      ]);
      if (opts.featurePages && !opts.html)
        throw new UsageError("--feature-pages are the pages the graph page links to: add --html FILE.");
      const { set, model } = await loadGraphInputs(opts);
      try {
        const targets = targetTokens(model, opts.target, "--target");
        const { createProgress } = await import("../../util/progress.ts");
        const progress = createProgress({
          label: "graph: backward batches",
          total: 1,
          quiet: opts.json,
          unit: "targets",
        });
        const built = await untilCtrlC("graph", (signal) =>
          graphOfPrompt(model, set, opts, targets, { signal, onProgress: progressTo(progress) }),
        ).finally(() => progress.stop());
        if (built === null) return;
        const { attributed, graph, pruned, scores, frontEnd, tokens } = built;
        if (opts.featurePages) {
          const { writeGraphFeaturePages } = await import("../../neurons/graph-feature-pages.ts");
          const { defaultTranscoderIndex } = await import("../../neurons/feature-page.ts");
          const { NeuronIndex } = await import("../../neurons/neuron-index.ts");
          const indexDir = defaultTranscoderIndex(opts.transcoders as string);
          await writeGraphFeaturePages(opts.featurePages, model, set, frontEnd, {
            index: indexDir ? NeuronIndex.open(indexDir) : null,
            setName: opts.transcoders as string,
            modelName: opts.model,
            overwrite: opts.overwrite,
            flag: "--feature-pages",
          });
        }
        await writeGraphOutputs(graph, frontEnd, opts, {
          scores: { replacement: scores.replacementScore, completeness: scores.completenessScore },
          finalSoftCap: model.cfg.finalSoftCap ?? null,
        });
        const { graphNodes } = await import("../../graphs/attribution-graph.ts");
        const checks =
          opts.check > 0
            ? (await import("../../graphs/graph-check.ts")).checkTopFeatures(model, set, attributed, {
                top: opts.check,
                freeze: opts.checkFreeze,
              })
            : [];
        const nodes = graphNodes(graph);
        const keptNodes = nodes.filter((_, i) => pruned.nodeMask[i]).map((node) => node.node_id);
        let keptEdges = 0;
        for (const m of pruned.edgeMask) keptEdges += m;
        const targetInfo = graph.logitTokens.map((t, k) => ({
          token: t,
          text: model.toString([t]),
          probability: graph.logitProbabilities[k],
        }));
        if (opts.json) {
          printJson({
            replacement_score: scores.replacementScore,
            completeness_score: scores.completenessScore,
            n_features: graph.features.length,
            n_nodes: nodes.length,
            n_kept_nodes: keptNodes.length,
            n_kept_edges: keptEdges,
            kept_nodes: keptNodes,
            targets: targetInfo,
            ...(checks.length ? { check: checks, check_frozen: Boolean(opts.checkFreeze) } : {}),
          });
          return;
        }
        const lines = [
          `Attribution graph of ${JSON.stringify(opts.prompt)} (${tokens.length} tokens), model ${opts.model}, transcoders ${opts.transcoders}`,
          `Targets: ${targetInfo.map((t, k) => `${JSON.stringify(t.text)} p=${t.probability.toFixed(3)}${k === 0 ? " (target logit)" : ""}`).join(", ")}`,
          `${graph.features.length} active features, ${nodes.length} nodes; replacement score ${scores.replacementScore.toFixed(3)}, completeness score ${scores.completenessScore.toFixed(3)}`,
          `Pruned (node threshold ${opts.nodeThreshold}, edge threshold ${opts.edgeThreshold}): ${keptNodes.length} nodes, ${keptEdges} edges`,
        ];
        if (checks.length) {
          lines.push(
            `Check: each feature ablated in the real model (transcoders spliced in, errors held${opts.checkFreeze ? ", patterns and norm scales frozen" : ""}); change of the demeaned ${model.cfg.finalSoftCap == null ? "" : "pre-cap "}logit ${JSON.stringify(targetInfo[0].text)}:`,
            `  ${"node".padEnd(14)}${"activation".padStart(12)}${"direct".padStart(12)}${"total".padStart(12)}${"measured".padStart(12)}`,
          );
          const fmt = (x: number) => x.toPrecision(4).padStart(12);
          for (const c of checks)
            lines.push(
              `  ${c.nodeId.padEnd(14)}${fmt(c.activation)}${fmt(c.predictedDirect)}${fmt(c.predictedTotal)}${fmt(c.measured)}`,
            );
          lines.push(
            "  (direct: the edge into the logit; total: through every feature path of the linear graph)",
          );
        }
        if (opts.raw) lines.push(`Wrote ${opts.raw}/ (nodes.json, adjacency.safetensors: unpruned)`);
        if (opts.out) lines.push(`Wrote ${opts.out} (front-end graph, pruned)`);
        if (opts.html) lines.push(`Wrote ${opts.html} (interactive graph page)`);
        process.stdout.write(`${lines.join("\n")}\n`);
      } finally {
        model.dispose();
      }
    });
}

/** The transcoder set and the model, checked against each other: every problem a usage error, before any work. */
export async function loadGraphInputs(
  opts: ModelCliOptions & { transcoders?: string },
): Promise<{ set: TranscoderSet; model: HookedTransformer }> {
  const { loadTranscoderSet } = await import("../../graphs/transcoder-set.ts");
  let set: TranscoderSet;
  try {
    set = await loadTranscoderSet(opts.transcoders as string, { offline: opts.offline });
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
  const model = await loadModelFromOptions(opts);
  const { checkGraphHooks } = await import("../../graphs/attribute-graph.ts");
  const { checkTranscoderSet } = await import("../../graphs/replacement-run.ts");
  try {
    checkTranscoderSet(model, set);
    checkGraphHooks(model, set);
  } catch (e) {
    model.dispose();
    throw new UsageError(`--transcoders ${opts.transcoders}: ${(e as Error).message}`);
  }
  return { set, model };
}

/** `--target` texts (or a prompt file's "target") as single tokens; a bad one is a usage error naming `where`. */
export function targetTokens(model: HookedTransformer, texts: readonly string[], where: string): number[] {
  return texts.map((text) => {
    try {
      return model.toSingleToken(text);
    } catch (e) {
      throw new UsageError(`${where} ${JSON.stringify(text)}: ${(e as Error).message}`);
    }
  });
}

/**
 * One prompt's graph as `graph` builds it (`opts.prompt`, thresholds, slug, batch size): promptGraph's
 * attribution, pruning, scores and front-end object. `graph --prompts` calls it once per prompt of the file.
 */
export async function graphOfPrompt(
  model: HookedTransformer,
  set: TranscoderSet,
  opts: GraphCliOptions,
  targets: number[],
  run: { signal?: AbortSignal; onProgress?: (done: number, total: number) => void },
) {
  const { promptGraph } = await import("../../graphs/prompt-graph.ts");
  const tokens = model.toTokens(opts.prompt ?? "", { prependBos: opts.prependBos });
  const built = await promptGraph(model, tokens, set, {
    prompt: opts.prompt ?? "",
    slug: opts.slug,
    scan: set.modelName ?? opts.model,
    nodeThreshold: opts.nodeThreshold,
    edgeThreshold: opts.edgeThreshold,
    targets,
    batchSize: opts.batchSize,
    signal: run.signal,
    onProgress: run.onProgress,
  });
  return { ...built, graph: built.attributed.graph, tokens };
}

async function writeGraphOutputs(
  graph: import("../../graphs/attribution-graph.ts").AttributionGraph,
  frontEnd: FrontEndGraph,
  opts: GraphCliOptions,
  page: { scores: { replacement: number; completeness: number }; finalSoftCap: number | null },
): Promise<void> {
  const { writeRawGraph, writeFrontEndGraph } = await import("../../graphs/graph-files.ts");
  if (opts.raw) await writeRawGraph(opts.raw, graph, { overwrite: opts.overwrite });
  if (opts.out) writeFrontEndGraph(opts.out, frontEnd);
  if (opts.html) {
    const { writeGraphPage } = await import("../../viz/graph-page.ts");
    const { featurePagesUrl } = await import("../../neurons/graph-feature-pages.ts");
    const featureUrl = opts.featurePages ? featurePagesUrl(opts.html, opts.featurePages) : undefined;
    writeGraphPage(opts.html, frontEnd, {
      model: opts.model,
      finalSoftCap: page.finalSoftCap,
      edgeThreshold: opts.edgeThreshold,
      scores: page.scores,
      featureUrl,
    });
  }
}
