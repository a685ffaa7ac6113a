/**
 * Circuit benchmark (for `circuitscope bench`): on a GPT-2-small-shaped random model with one 8-token
 * clean/corrupted pair, EAP and EAP-IG (5 steps) scores of every edge (~32k), and one evaluation of a
 * circuit with half the edges kept. Targets (docs/benchmarks.md): ≤ 2 s, ≤ 8 s, ≤ 1 s.
 */

import { CircuitTask } from "../src/circuits/circuit-task.ts";
import type { HookedTransformer } from "../src/model/hooked-transformer.ts";
import { mulberry32 } from "../src/util/random.ts";

export interface CircuitBenchResult {
  circuit_edges: number;
  circuit_setup_s: number;
  eap_all_edges_s: number;
  eap_ig5_all_edges_s: number;
  circuit_evaluate_s: number;
}

/** Median wall time in ms of an async `fn` over `runs` runs after one warm-up run. */
async function medianMsAsync(fn: () => Promise<unknown>, runs: number): Promise<number> {
  await fn();
  const times: number[] = [];
  for (let i = 0; i < runs; i++) {
    const t0 = performance.now();
    await fn();
    times.push(performance.now() - t0);
  }
  return times.sort((a, b) => a - b)[Math.floor(times.length / 2)];
}

export async function benchCircuits(
  model: HookedTransformer,
  opts: { runs?: number; log?: (line: string) => void } = {},
): Promise<CircuitBenchResult> {
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
  const t0 = performance.now();
  const t = new CircuitTask(model, pairs);
  const setup = performance.now() - t0;
  const nEdges = t.graph.nEdges;
  log(`circuit task (clean + corrupted runs over ${nEdges} edges): ${(setup / 1000).toFixed(2)} s`);
  const eap = await medianMsAsync(() => t.gradientScores(1), runs);
  log(`EAP scores of all ${nEdges} edges: ${(eap / 1000).toFixed(2)} s (target ≤ 2 s)`);
  const ig = await medianMsAsync(() => t.gradientScores(5), runs);
  log(`EAP-IG (5 steps) scores of all edges: ${(ig / 1000).toFixed(2)} s (target ≤ 8 s)`);
  const rng = mulberry32(3);
  const half = new Float32Array(nEdges);
  for (let e = 0; e < nEdges; e++) half[e] = rng() < 0.5 ? 1 : 0;
  const evaluate = await medianMsAsync(async () => t.evaluate(half), runs);
  log(`one circuit evaluation with half the edges kept: ${(evaluate / 1000).toFixed(2)} s (target ≤ 1 s)`);
  return {
    circuit_edges: nEdges,
    circuit_setup_s: setup / 1000,
    eap_all_edges_s: eap / 1000,
    eap_ig5_all_edges_s: ig / 1000,
    circuit_evaluate_s: evaluate / 1000,
  };
}
