import type { Command } from "commander";
import { hasGap, sameAnswerProblem } from "../../analysis/answer-metrics.ts";
import { formatSigned } from "../../analysis/stats.ts";
import type { HookedTransformer } from "../../model/hooked-transformer.ts";
import type { TargetComparison } from "../../patching/attribution-compare.ts";
import { agreeingLabels } from "../../patching/result.ts";
import { cellLabel, fullJson } from "../../patching/result-format.ts";
import { RESID_TARGETS, TARGET_NAMES } from "../../patching/targets.ts";
import type { PatchResult } from "../../patching/types.ts";
import type { PatchInputs } from "../../viz/presets/patch-figures.ts";
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
import { addSaeOptions, loadPreparedSae, prepareSae, type SaeCliOptions } from "../sae-options.ts";

export interface PatchOptions extends ModelCliOptions, SaeCliOptions {
  clean: string[];
  corrupted: string[];
  answer?: string;
  wrong?: string;
  target: string;
  layer?: number;
  pos?: number;
  byPos?: boolean;
  perPrompt?: boolean;
  out?: string;
  html?: string;
  json?: boolean;
  method: string;
  prependBos: boolean;
  pairs?: string;
  batchSize: number;
  shard?: string;
  resume?: boolean;
}

export function register(program: Command): void {
  addSaeOptions(
    addModelOptions(
      program
        .command("patch")
        .description(
          "activation patching: patch clean activations into the corrupted run, one location at a time, and report the fraction restored: (patched - corrupted) / (clean - corrupted) logit difference, 1 = clean behaviour restored",
        ),
    ),
    { edits: false },
  )
    .option("--clean <text>", "clean prompt (repeat for a batch)", collect)
    .option(
      "--corrupted <text>",
      "corrupted prompt, same token length as its clean prompt (repeat in order)",
      collect,
    )
    .option("--answer <text>", "the clean answer token (one token, mind the leading space)")
    .option("--wrong <text>", "the corrupted (wrong) answer token")
    .requiredOption("-t, --target <target>", `what to patch: ${TARGET_NAMES.join(", ")}`)
    .option("--layer <l>", "neurons: only this layer's (default: every layer's)", parseIntOption("layer"))
    .option("--pos <p>", "neurons: patch only at this position", parseIntOption("pos"))
    .option("--by-pos", "head targets: one value per [layer, pos, head] (patterns: per destination position)")
    .option("--per-prompt", "also report each prompt's logit difference and fraction restored")
    .option("--out <file>", "write the full result (incl. per-prompt values) as JSON")
    .option("--html <file>", "write an HTML report with heatmaps")
    .option("--method <method>", "exact (fast, exact), attribution or compare", "exact")
    .addOption(prependBosOption())
    .option(
      "--pairs <file>",
      "a file of prompt pairs (JSONL or a JSON array: clean, corrupted, answer, wrong, group — as study custom reads), patched in batches; --out is then a directory",
    )
    .option(
      "--batch-size <n>",
      "--pairs: pairs per batch (one patching sweep each)",
      positiveIntOption("batch-size"),
      8,
    )
    .option(
      "--shard <i/n>",
      "--pairs: run only shard i of n of the batches (auto: the Slurm array task, auto/N: the Kubernetes Indexed Job pod); merge with patch-merge",
    )
    .option("--resume", "--pairs: keep a finished shard in --out (a re-run does nothing)")
    .option("--json", "print only JSON")
    .action(async (opts: PatchOptions, cmd: Command) => {
      if (opts.pairs) return (await import("../patch-pairs.ts")).runPatchPairs(opts, cmd);
      rejectIgnoredFlags(
        cmd,
        { batchSize: "--batch-size", shard: "--shard", resume: "--resume" },
        "without --pairs",
      );
      opts.clean ??= [];
      opts.corrupted ??= [];
      if (!["exact", "attribution", "compare"].includes(opts.method))
        throw new UsageError(`Unknown --method "${opts.method}": use exact, attribution or compare`);
      if (!(TARGET_NAMES as readonly string[]).includes(opts.target))
        throw new UsageError(`Unknown --target "${opts.target}": use one of ${TARGET_NAMES.join(", ")}`);
      if (opts.clean.length === 0)
        throw new UsageError("No prompts: give --clean TEXT --corrupted TEXT (repeatable)");
      if (opts.answer === undefined || opts.wrong === undefined)
        throw new UsageError(
          'The metric needs --answer TEXT and --wrong TEXT (single tokens, e.g. --answer "\'re" --wrong " are")',
        );
      if (opts.target === "features" && !opts.sae)
        throw new UsageError(
          "--target features patches an SAE's features: add --sae DIR (an SAELens directory)",
        );
      if (opts.target !== "features" && opts.sae)
        throw new UsageError(`--sae applies to --target features only, not --target ${opts.target}`);
      if (opts.target !== "neurons" && (opts.layer !== undefined || opts.pos !== undefined))
        throw new UsageError("--layer and --pos apply to --target neurons only");
      // A flag that is accepted must change the output: refuse the combinations that would ignore it.
      if (opts.byPos && !/^head_(z|q|k|v|pattern)$/.test(opts.target))
        throw new UsageError(
          `--by-pos applies to one head component (head_z, head_q, head_k, head_v, head_pattern), not --target ${opts.target}`,
        );
      if (opts.perPrompt && opts.method === "compare")
        throw new UsageError(
          "--per-prompt is not available with --method compare (it compares batch values): drop it, or use --out for every value",
        );

      opts.clean.forEach((clean, i) => {
        if (clean === opts.corrupted[i])
          throw new UsageError(
            `${opts.clean.length === 1 ? "The" : `Pair ${i}:`} --clean and --corrupted prompts are identical (${JSON.stringify(clean)}), so patching has nothing to restore: give a corrupted prompt that differs.`,
          );
      });
      checkOutputPaths([
        { path: opts.out, flag: "--out", kind: "file" },
        { path: opts.html, flag: "--html", kind: "file" },
      ]);
      const pendingSae = await prepareSae(opts);
      const model = await loadModelFromOptions(opts);
      const sae = pendingSae ? await loadPreparedSae(pendingSae, model) : undefined;
      const { activationPatching } = await import("../../patching/activation-patching.ts");
      const { answerToken } = await import("../../patching/pairs.ts");
      const { resultJson } = await import("../../patching/result-format.ts");
      const { createProgress } = await import("../../util/progress.ts");
      const answers = {
        answer: answerToken(model, opts.answer, "--answer"),
        wrong: answerToken(model, opts.wrong, "--wrong"),
      };
      const same = sameAnswerProblem(answers.answer, answers.wrong);
      if (same) throw new UsageError(`${same.message} ${same.fix}`);
      const { targetFromName } = await import("../../patching/targets.ts");
      const target = targetFromName(opts.target, {
        layer: opts.layer,
        pos: opts.pos,
        perPosition: opts.byPos,
        sae,
      });
      checkPositionsLineUp(model, opts);

      const progress = createProgress({
        label: `patch ${opts.target}`,
        total: 1,
        quiet: opts.json,
        unit: "runs",
      });
      let result: PatchResult | null;
      try {
        // null: stopped by Ctrl-C (nothing written), or a comparison that wrote its own outputs.
        result = await untilCtrlC("patch", async (signal): Promise<PatchResult | null> => {
          let last = 0;
          const sweep = {
            clean: opts.clean,
            corrupted: opts.corrupted,
            answers,
            target,
            prependBos: opts.prependBos,
            signal,
            onProgress: (done: number, total: number) => {
              progress.setTotal(total);
              progress.tick(done - last);
              last = done;
            },
          };
          if (opts.method === "compare") {
            const cmp = await import("../../patching/attribution-compare.ts");
            const cmps = await cmp.compareAttribution(model, { ...sweep, targets: [target] });
            progress.stop();
            if (opts.out) {
              const { writeFileAtomic } = await import("../../viz/index.ts");
              const full = {
                ...cmp.comparisonJson(cmps),
                results: cmps.map((c) => ({
                  target: c.target,
                  estimate: fullJson(c.estimate),
                  exact: fullJson(c.exact),
                })),
              };
              writeFileAtomic(opts.out, `${JSON.stringify(full)}\n`);
            }
            if (opts.html) await writeComparisonReport(opts.html, cmps, patchInputs(model, opts));
            if (opts.json) printJson(cmp.comparisonJson(cmps));
            else process.stdout.write(`${cmp.formatComparison(cmps)}\n`);
            return null; // the comparison wrote its own outputs
          }
          return opts.method === "attribution"
            ? (await import("../../patching/attribution-patching.ts")).attributionPatching(model, sweep)
            : await activationPatching(model, sweep);
        });
      } finally {
        progress.stop();
      }
      if (result === null) return;

      if (opts.out) {
        const { writeFileAtomic } = await import("../../viz/index.ts");
        writeFileAtomic(opts.out, `${JSON.stringify(fullJson(result))}\n`);
      }
      if (opts.html && !hasGap(result.clean, result.corrupted)) {
        // A page of fractions restored would be a page of NaN and ±Infinity: none is written, and it says so.
        process.stderr.write(
          `circuitscope: no page written to ${opts.html}: the clean and corrupted logit differences are equal (${result.clean.toFixed(4)}), so the fraction restored is undefined (clean = corrupted). The changes of the logit difference are printed below${opts.out ? ` and in ${opts.out}` : ""}; give pairs whose clean − corrupted gap does not cancel over the batch (e.g. not a pair and its swap), or run each pair on its own.\n`,
        );
        process.exitCode = 1;
      } else if (opts.html) await writeReport(opts.html, result, patchInputs(model, opts));
      if (opts.json) {
        printJson(resultJson(result, { perPrompt: opts.perPrompt }));
        return;
      }
      process.stdout.write(`${formatText(result, opts.perPrompt ?? false)}\n`);
    });
}

/**
 * A target patched one position at a time averages position p over the batch and names p by its token:
 * with pairs of different token lengths p is a different place in different pairs, so that is refused
 * (naming the pairs and their lengths) before the sweep. Targets over all positions take any lengths.
 */
function checkPositionsLineUp(model: HookedTransformer, opts: PatchOptions): void {
  const byPosition =
    (RESID_TARGETS as readonly string[]).includes(opts.target) ||
    opts.target === "features" ||
    opts.byPos === true ||
    opts.pos !== undefined;
  if (!byPosition) return;
  const lengths = opts.clean.map((c) => model.toTokens(c, { prependBos: opts.prependBos }).length);
  if (lengths.every((n) => n === lengths[0])) return;
  const flag = opts.pos !== undefined ? "--pos" : opts.byPos ? "--by-pos" : `--target ${opts.target}`;
  throw new UsageError(
    `The prompt pairs differ in token length (${lengths.map((n, i) => `pair ${i}: ${n} tokens`).join(", ")}), ` +
      `and ${flag} patches one position at a time: a position would be a different word in different pairs, ` +
      "so their effects would be averaged and labelled with one prompt's tokens. Give pairs of one token length " +
      "whose words line up position by position, run each pair on its own, or patch a target over all positions " +
      "(head_z, head_q, head_k, head_v, head_pattern, head_all, or neurons without --pos).",
  );
}

function formatText(r: PatchResult, perPrompt: boolean): string {
  const lines = [
    `Target ${r.target} [${r.axes.join(", ")}] = [${r.shape.join(", ")}]`,
    `Logit difference: clean ${r.clean.toFixed(4)}, corrupted ${r.corrupted.toFixed(4)}`,
  ];
  // With no clean − corrupted gap (a batch whose pairs cancel) the fraction restored is undefined: the
  // effects are listed as the change of the logit difference instead of NaN or ±Infinity.
  const gap = hasGap(r.clean, r.corrupted);
  const effect = (i: number) => (gap ? r.values[i] : r.raw[i] - r.corrupted);
  // Cells with one name are one effect (the k/v cells of query heads sharing a key/value head): listed once.
  const named = new Map<string, number>();
  for (const i of r.values.keys()) {
    const name = cellLabel(r, i);
    if (!named.has(name)) named.set(name, i);
  }
  const order = [...named.values()].sort((a, b) => Math.abs(effect(b)) - Math.abs(effect(a)));
  lines.push(
    gap
      ? "Largest effects (fraction restored; 1 = clean restored):"
      : "Fraction restored: undefined (clean = corrupted: the batch has no gap to restore, e.g. pairs that are each other's swap). Largest effects as the change of the logit difference (patched − corrupted):",
  );
  for (const i of order.slice(0, 15)) {
    lines.push(
      `  ${cellLabel(r, i).padEnd(28)} ${(gap ? effect(i).toFixed(4) : formatSigned(effect(i), 4)).padStart(9)}`,
    );
  }
  if (r.kvGroupSize)
    lines.push(
      `  (k and v: ${r.kvGroupSize} query heads share each key/value head (KV), so their cells are one effect, listed once)`,
    );
  if (perPrompt) {
    const n = r.values.length;
    r.perPrompt.clean.forEach((c, b) => {
      const name = r.perPrompt.clean.length === 1 ? "The prompt" : `Prompt ${b}`;
      const promptGap = hasGap(c, r.perPrompt.corrupted[b]);
      lines.push(`${name}: clean ${c.toFixed(4)}, corrupted ${r.perPrompt.corrupted[b].toFixed(4)}`);
      for (const i of order.slice(0, 5)) {
        const fraction = promptGap
          ? r.perPrompt.values[b * n + i].toFixed(4).padStart(9)
          : "undefined (clean = corrupted)";
        lines.push(
          `  ${cellLabel(r, i).padEnd(28)} logit diff ${r.perPrompt.raw[b * n + i].toFixed(4).padStart(9)}  fraction restored ${fraction}`,
        );
      }
    });
  }
  return lines.join("\n");
}

/** What the page states about its inputs: prompts, tokens, and the token strings of the labelled pair. */
function patchInputs(model: HookedTransformer, opts: PatchOptions): PatchInputs {
  const tok = { prependBos: opts.prependBos };
  // Each position is named by what holds for every prompt: its clean token(s) and, where they differ, its
  // corrupted token(s). Prompts of unequal lengths leave the names to the result (plain positions).
  const clean = agreeingLabels(opts.clean.map((p) => model.toStrTokens(p, tok)));
  const corrupted = agreeingLabels(opts.corrupted.map((p) => model.toStrTokens(p, tok)));
  const aligned = clean !== null && corrupted !== null && clean.length === corrupted.length;
  return {
    clean: opts.clean,
    corrupted: opts.corrupted,
    answer: opts.answer ?? "",
    wrong: opts.wrong ?? "",
    cleanTokens: aligned ? clean : undefined,
    corruptedTokens: aligned ? corrupted : undefined,
    model: opts.model,
  };
}

async function writeReport(path: string, r: PatchResult, inputs: PatchInputs): Promise<void> {
  const { writeHtmlReport } = await import("../../viz/index.ts");
  const { patchFigures, patchInputsList } = await import("../../viz/presets/patch-figures.ts");
  writeHtmlReport(path, {
    title: `Activation patching: ${r.target}`,
    subtitle: `model ${inputs.model}; ${inputs.clean.length} prompt pair(s); method ${r.method}`,
    sections: [
      {
        heading: r.target,
        inputs: patchInputsList(r, inputs),
        text: "Clean activations patched into the corrupted run, one location at a time.",
        figures: patchFigures(r, inputs),
      },
    ],
  });
}

async function writeComparisonReport(
  path: string,
  cmps: readonly TargetComparison[],
  inputs: PatchInputs,
): Promise<void> {
  const { writeHtmlReport } = await import("../../viz/index.ts");
  const { comparisonFigures, patchInputsList } = await import("../../viz/presets/patch-figures.ts");
  const { figures, tables } = comparisonFigures(cmps);
  writeHtmlReport(path, {
    title: `Attribution patching vs exact patching: ${cmps.map((c) => c.target).join(", ")}`,
    subtitle: `model ${inputs.model}; ${inputs.clean.length} prompt pair(s)`,
    sections: [
      {
        heading: "Estimate against exact",
        inputs: patchInputsList(cmps[0].exact, inputs),
        text: "Each location patched exactly (a patched run) and estimated by attribution patching (one gradient pass). Points on the dashed line are estimated exactly.",
        figures,
        tables,
      },
    ],
  });
}
