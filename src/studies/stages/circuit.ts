/**
 * The focus group's circuit of edges (EAP-IG, the smallest top-n circuit at 80 % faithfulness, exact
 * check of its top edges), and how it compares with the heads the manual analysis ranked top by direct
 * logit attribution. docs/circuits.md.
 */
import { CircuitTask } from "../../circuits/circuit-task.ts";
import { DEFAULT_COMPARE_TOP } from "../../circuits/defaults.ts";
import { type CircuitResult, findCircuit } from "../../circuits/find-circuit.ts";
import { edgeLabel, nodeLabel } from "../../circuits/graph.ts";
import { circuitBrief, compareWithManual } from "../../circuits/summary.ts";
import { barChart } from "../../viz/charts/bar-chart.ts";
import {
  circuitScoreLabel,
  curvePoints,
  dipsNear,
  faithfulnessCurve,
} from "../../viz/presets/circuit-figures.ts";
import type { FocusResult } from "../results.ts";
import type { NamedFigure, Stage, StageSlice } from "../stage.ts";

export const CIRCUIT_FAITHFULNESS = 0.8;
const IG_STEPS = 5;

type Slice = StageSlice & { focus: Pick<FocusResult, "circuit"> };

/** "L3H2" → "a3.h2" (the edge graph's node name). */
export const headNode = (label: string) => label.replace(/^L(\d+)H(\d+)$/, "a$1.h$2");

export const circuitStage: Stage<Slice> = {
  name: "circuit",
  async run(ctx, res) {
    if (!res.focus.analysed || !res.focus.normalised) {
      ctx.omitted.push(
        "the circuit: the focus group's clean-vs-corrupted gap is not large enough to normalise",
      );
      return { focus: {} };
    }
    const task = new CircuitTask(ctx.model, ctx.focus.tokens);
    const tick = ctx.work(ctx.focus.tokens.clean.length * (IG_STEPS + 2));
    let r: CircuitResult;
    try {
      r = await findCircuit(task, {
        method: "eap-ig",
        igSteps: IG_STEPS,
        faithfulness: CIRCUIT_FAITHFULNESS,
        compareTop: DEFAULT_COMPARE_TOP,
      });
    } finally {
      task.dispose(); // the model outlives the stage
    }
    tick(ctx.focus.tokens.clean.length * (IG_STEPS + 2));
    const brief = circuitBrief(r, 15);
    const manualTop = (res.focus.topHeads ?? []).map((c) => headNode(c.label));
    return {
      focus: {
        circuit: {
          ...brief,
          scoreLabel: circuitScoreLabel(r),
          edgeNames: r.circuit.edges,
          curve: r.faithfulness,
          baseline: r.baseline,
          manualTop,
          versusManual: compareWithManual(brief, manualTop),
        },
      },
    };
  },
  sections(res) {
    const c = res.focus.circuit;
    if (!c) return [];
    const F = res.focusGroup;
    const dips = dipsNear(curvePoints(c.curve), c.edges);
    const figures: NamedFigure[] = [
      {
        name: "focus-circuit-faithfulness",
        figure: faithfulnessCurve({ faithfulness: c.curve }, c.edges),
        caption: `Faithfulness of the top-n edges by |${c.method} score| (pruned to paths from input to logits) against the edges kept (log scale), ${F}: (circuit − corrupted) / (clean − corrupted) logit difference, mean over the group's prompts. The chosen circuit: ${c.edges} of ${c.totalEdges} edges, faithfulness ${c.normalized.toFixed(3)}${dips.length ? `; the curve is not monotone next to it (ringed: ${dips.map((d) => `${d.edges} edges ${d.normalized.toFixed(3)}`).join(", ")}), so a slightly different size can be less faithful` : "; the curve is monotone next to it"}.`,
      },
      {
        name: "focus-circuit-edges",
        figure: barChart({
          title: `The circuit's strongest edges (${F})`,
          labels: c.strongest.map((e) => edgeLabel(e.name)),
          values: c.strongest.map((e) => e.score),
          horizontal: true,
          labelTitle: "edge",
          valueTitle: "score (logit diff)",
        }),
        caption: `The ${c.strongest.length} edges of the circuit with the largest |score|: ${c.scoreLabel}. Negative: removing the edge lowers the logit difference.${c.estimateCheck ? ` Against the exact score on the estimate's top ${c.estimateCheck.edges} edges: Pearson r ${c.estimateCheck.correlation.toFixed(3)}, same sign on ${c.estimateCheck.sameSign}.` : ""}`,
      },
    ];
    const v = c.versusManual;
    const text = [
      `${c.reached ? "The smallest" : "No"} circuit of edges found by ${c.method} ${c.reached ? "reaching" : "reached"} ${Math.round(100 * (c.target ?? CIRCUIT_FAITHFULNESS))} % faithfulness on ${F}${c.reached ? `: ${c.edges} of ${c.totalEdges} edges (faithfulness ${c.normalized.toFixed(3)}), through ${c.components.map(nodeLabel).join(", ")}.` : "."}`,
      c.manualTop.length
        ? `Of the top heads by clean − corrupted direct logit attribution (${c.manualTop.map(nodeLabel).join(", ")}), ${v.inCircuit.length ? `${v.inCircuit.map(nodeLabel).join(", ")} ${v.inCircuit.length === 1 ? "is" : "are"} in the circuit` : "none is in the circuit"}${v.missing.length ? `; not in it: ${v.missing.map(nodeLabel).join(", ")}` : ""}. Heads in the circuit that direct attribution did not rank top: ${
            v.onlyInCircuit
              .filter((n) => n.startsWith("a"))
              .map(nodeLabel)
              .join(", ") || "none"
          } (they act through other components, or below the DLA list's cut).`
        : "",
      "The circuit's graph: `circuitscope circuit --prompts PAIRS --group GROUP --html F` draws it (docs/circuits.md).",
    ]
      .filter(Boolean)
      .join("\n\n");
    return [{ heading: "Circuit of edges (EAP-IG)", text, figures }];
  },
  findings(res) {
    const c = res.focus.circuit;
    if (!c) return [];
    return [
      {
        text: c.reached
          ? `In ${res.focusGroup}, ${c.edges} of ${c.totalEdges} edges (${c.method}) keep ${Math.round(100 * c.normalized)} % of the clean-vs-corrupted logit difference when everything else is corrupted.`
          : `In ${res.focusGroup}, no top-n circuit of edges reached ${Math.round(100 * (c.target ?? CIRCUIT_FAITHFULNESS))} % faithfulness.`,
        evidence: {
          "focus.circuit.edges": c.edges,
          "focus.circuit.normalized": c.normalized,
          "focus.circuit.target": c.target ?? CIRCUIT_FAITHFULNESS,
        },
      },
    ];
  },
};
