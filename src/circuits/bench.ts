/**
 * Circuit benchmark (for `circuitscope bench`): on a GPT-2-small-shaped random model with one 8-token
 * clean/corrupted pair, EAP and EAP-IG (5 steps) scores of every edge (~32k), and one evaluation of a
 * circuit with half the edges kept. Targets (docs/benchmarks.md): ≤ 2 s, ≤ 8 s, ≤ 1 s.
 */
import { medianMs } from "../bench/gpt2-small.ts";
import type { HookedTransformer } from "../model/hooked-transformer.ts";
import { mulberry32 } from "../util/random.ts";
import { CircuitTask } from "./circuit-task.ts";

export interface CircuitBenchResult {
  circuit_edges: number;
  circuit_setup_s: number;
  eap_all_edges_s: number;
  eap_ig5_all_edges_s: number;
  circuit_evaluate_s: number;
}

export function benchCircuits(
  model: HookedTransformer,
  opts: { runs?: number; log?: (line: string) => void } = {},
): CircuitBenchResult {
  const log = opts.log ?? (() => {});
  const runs = opts.runs ?? 3;
  const clean = model.toTokens("We're helping our friend while they");
  const corrupted = model.toTokens("We are helping our friend while they");
  if (clean.length !== 8 || corrupted.length !== 8) throw new Error("bench pair is not 8 tokens");
  const pairs = {
    clean: [clean],
    corrupted: [corrupted],
    answer: [model.toSingleToken("'re")],
    wrong: [model.toSingleToken(" are")],
  };
  let task: CircuitTask | null = null;
  const setup = medianMs(
    () => {
      task = new CircuitTask(model, pairs);
    },
    1,
    0,
  );
  const t = task as unknown as CircuitTask;
  const nEdges = t.graph.nEdges;
  log(`circuit task (clean + corrupted runs over ${nEdges} edges): ${(setup / 1000).toFixed(2)} s`);
  const eap = medianMs(() => t.gradientScores(1), runs);
  log(`EAP scores of all ${nEdges} edges: ${(eap / 1000).toFixed(2)} s (target ≤ 2 s)`);
  const ig = medianMs(() => t.gradientScores(5), runs);
  log(`EAP-IG (5 steps) scores of all edges: ${(ig / 1000).toFixed(2)} s (target ≤ 8 s)`);
  const rng = mulberry32(3);
  const half = new Float32Array(nEdges);
  for (let e = 0; e < nEdges; e++) half[e] = rng() < 0.5 ? 1 : 0;
  const evaluate = medianMs(() => t.evaluate(half), runs);
  log(`one circuit evaluation with half the edges kept: ${(evaluate / 1000).toFixed(2)} s (target ≤ 1 s)`);
  return {
    circuit_edges: nEdges,
    circuit_setup_s: setup / 1000,
    eap_all_edges_s: eap / 1000,
    eap_ig5_all_edges_s: ig / 1000,
    circuit_evaluate_s: evaluate / 1000,
  };
}
