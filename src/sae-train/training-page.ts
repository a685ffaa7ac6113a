/**
 * The training page: loss, L0 and dead share per step (one unit per chart), and the held-out feature
 * density histogram, where features that never fired have their own labelled bar (not a zero-height one
 * at some density). Drawn with the project's charts.
 */
import { barChart } from "../viz/charts/bar-chart.ts";
import { lineChart } from "../viz/charts/line-chart.ts";
import { writeHtmlReport } from "../viz/html/report.ts";
import type { HeldOutMetrics } from "./held-out.ts";
import type { StepLog } from "./trainer.ts";

/** Charts draw at most this many points per series (every n-th step, the last always included). */
const MAX_POINTS = 600;

function everyNth(log: readonly StepLog[]): StepLog[] {
  const stride = Math.max(1, Math.ceil(log.length / MAX_POINTS));
  return log.filter((_, i) => i % stride === 0 || i === log.length - 1);
}

/** Counts of features per log10-density bin of width 0.5, from the lowest bin that holds a live feature to 0. */
export function densityHistogram(
  logDensity: Float32Array,
  tokens: number,
): { labels: string[]; counts: number[]; never: number } {
  // A feature that never fired has log10(0 + 1e-10) = −10: counted apart.
  const floor = Math.log10(1 / tokens);
  let never = 0;
  const live: number[] = [];
  for (const d of logDensity) {
    if (d < floor - 1e-6) never++;
    else live.push(d);
  }
  const lo = live.length ? Math.floor(Math.min(...live) * 2) / 2 : -1;
  const labels: string[] = [];
  const counts: number[] = [];
  for (let b = lo; b < 0; b += 0.5) {
    labels.push(`${b.toFixed(1)} … ${(b + 0.5).toFixed(1)}`);
    counts.push(live.filter((d) => d >= b && (d < b + 0.5 || (b + 0.5 >= 0 && d <= 0))).length);
  }
  return { labels, counts, never };
}

export interface TrainingPageInput {
  log: readonly StepLog[];
  heldOut: HeldOutMetrics;
  hook: string;
  model: string;
  batchSize: number;
  /** What the run trained on, in words (passes over the harvest). */
  harvestNote: string;
  command?: string;
}

export function writeTrainingPage(path: string, input: TrainingPageInput): void {
  const shown = everyNth(input.log);
  const x = shown.map((l) => l.step + 1);
  const sampled =
    shown.length < input.log.length
      ? ` Every ${Math.ceil(input.log.length / MAX_POINTS)}th step is drawn.`
      : "";
  const h = input.heldOut;
  const hist = densityHistogram(h.logDensity, h.tokens);
  const s = input;
  writeHtmlReport(path, {
    title: `SAE training: ${s.hook} of ${s.model}`,
    subtitle: s.command,
    sections: [
      {
        heading: "Held-out evaluation",
        inputs: [
          { label: "held-out tokens", value: String(h.tokens) },
          { label: "explained variance", value: h.explainedVariance.toFixed(4) },
          { label: "L0 (active features per token)", value: h.l0.toFixed(2) },
          {
            label: "dead features (never active on held-out tokens)",
            value: `${(h.deadFraction * 100).toFixed(1)} %`,
          },
        ],
        text: input.harvestNote,
        figures: [
          {
            figure: barChart({
              title: "Feature density on held-out tokens",
              labels: hist.never > 0 ? ["never fired", ...hist.labels] : hist.labels,
              values: hist.never > 0 ? [hist.never, ...hist.counts] : hist.counts,
              labelTitle: "log10 of the share of tokens a feature is active on",
              valueTitle: "features",
            }),
            caption:
              `Features per density bin over ${h.tokens} held-out tokens.` +
              (hist.never > 0
                ? ` ${hist.never} features never fired; they have their own bar.`
                : " Every feature fired at least once."),
          },
        ],
      },
      {
        heading: "Training curves",
        text: `Per training step (batches of ${s.batchSize} activations).${sampled}`,
        figures: [
          {
            figure: lineChart({
              title: "Reconstruction loss",
              x,
              series: [{ name: "squared error per token", values: shown.map((l) => l.mse) }],
              xTitle: "step",
              yTitle: "squared error per token (summed over dimensions)",
              zeroLine: true,
            }),
            caption: "The batch's squared reconstruction error per token, before the step's update.",
          },
          {
            figure: lineChart({
              title: "L0",
              x,
              series: [{ name: "active features per token", values: shown.map((l) => l.l0) }],
              xTitle: "step",
              yTitle: "active features per token",
              zeroLine: true,
            }),
            caption: "Mean number of non-zero features per token of the batch.",
          },
          {
            figure: lineChart({
              title: "Dead features",
              x,
              series: [{ name: "dead share", values: shown.map((l) => l.dead) }],
              xTitle: "step",
              yTitle: "share of features dead",
              zeroLine: true,
            }),
            caption:
              "Share of features that had not fired for the dead window of steps (the features AuxK trains).",
          },
        ],
      },
    ],
  });
}
