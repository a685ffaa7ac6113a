/**
 * Before/after comparison of two checkouts in one process (`bench --ab DIR`). Each checkout's own modules
 * build the same seeded models and run the same workloads; every round runs each workload once per
 * checkout, in alternating order. Drift of a shared machine (other jobs, frequency, another VM on the
 * host) then lands on both sides alike, which back-to-back `bench --json` processes cannot promise: their
 * figures move by 10-20 % from one run to the next here, more than the 5 % a change must stay within.
 *
 * The other checkout must have this module's entry points (bench/gpt2-small.ts, bench/llama-bench.ts,
 * bench/attribution-patching.ts, and the library functions they call), as every checkout since the
 * Llama family has.
 */
import { join } from "node:path";
import { pathToFileURL } from "node:url";

/** A timed unit of work; the value returned (if any) is ignored. */
type Workload = () => unknown;

export const AB_WORKLOADS = [
  "gpt2_forward_1x8",
  "gpt2_forward_8x8",
  "gpt2_forward_1x128",
  "llama_forward_1x8",
  "forward_backward_1x8",
  "attribution_all",
  "resid_pre_sweep",
  "heads_every_sweep",
  "eap_all_edges",
] as const;
export type AbWorkload = (typeof AB_WORKLOADS)[number];

export interface AbFigure {
  /** Median ms of the other checkout (before) and of this one (after). */
  before_ms: number;
  after_ms: number;
  /** after / before of the medians: above 1 is slower. */
  ratio: number;
  rounds: number;
}

// biome-ignore lint/suspicious/noExplicitAny: modules of another checkout, typed by its own sources
type AnyModule = any;

/** The workloads, built from the modules of the checkout at `root`. */
async function loadWorkloads(root: string, names: readonly AbWorkload[]): Promise<Record<string, Workload>> {
  const load = (path: string): Promise<AnyModule> => import(pathToFileURL(join(root, path)).href);
  const [gpt2, llama, attr, backward, logitMetric, attribution, fast, task, checkpoint, ht, random] =
    await Promise.all([
      load("bench/gpt2-small.ts"),
      load("bench/llama-bench.ts"),
      load("bench/attribution-patching.ts"),
      load("src/gradients/backward.ts"),
      load("src/gradients/logit-metric.ts"),
      load("src/patching/attribution-patching.ts"),
      load("src/patching/fast-patching.ts"),
      load("src/circuits/circuit-task.ts"),
      load("src/weights/checkpoint.ts"),
      load("src/model/hooked-transformer.ts"),
      load("src/util/random.ts"),
    ]);
  const model = gpt2.randomGpt2Small({ backend: "onnx" });
  const rng = random.mulberry32(2);
  const tokens = (b: number, p: number, vocab: number) =>
    Array.from({ length: b }, () => Array.from({ length: p }, () => Math.floor(rng() * vocab)));
  const clean = model.toTokens("We're helping our friend while they");
  const corrupted = model.toTokens("We are helping our friend while they");
  const answers = { answer: model.toSingleToken("'re"), wrong: model.toSingleToken(" are") };
  const out: Record<string, Workload> = {};
  const forward = (b: number, p: number) => {
    const t = tokens(b, p, model.cfg.dVocab);
    return () => model.run(t);
  };
  if (names.includes("gpt2_forward_1x8")) out.gpt2_forward_1x8 = forward(1, 8);
  if (names.includes("gpt2_forward_8x8")) out.gpt2_forward_8x8 = forward(8, 8);
  if (names.includes("gpt2_forward_1x128")) out.gpt2_forward_1x128 = forward(1, 128);
  if (names.includes("llama_forward_1x8")) {
    const { mkdtempSync, rmSync } = await import("node:fs");
    const { tmpdir } = await import("node:os");
    const dir = mkdtempSync(join(tmpdir(), "circuitscope-ab-"));
    try {
      const config = llama.SMOLLM_135M_CONFIG;
      const tensors = checkpoint.makeRandomCheckpoint(dir, config, { seed: 1 });
      const l = ht.HookedTransformer.fromCheckpoint({ config, tensors, dir }, { backend: "onnx" });
      const t = tokens(1, 8, config.dVocab);
      out.llama_forward_1x8 = () => l.run(t);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }
  const metric = logitMetric.logitDiffMetric(answers.answer, answers.wrong);
  if (names.includes("forward_backward_1x8"))
    out.forward_backward_1x8 = () => backward.runWithGradients(model, [corrupted], metric);
  if (names.includes("attribution_all"))
    out.attribution_all = () =>
      attribution.attributionPatchingAll(model, {
        clean: [clean],
        corrupted: [corrupted],
        answers,
        targets: attr.ALL_ATTRIBUTION_TARGETS,
      });
  const sweep = (target: unknown) => () =>
    fast.patchFast(model, {
      clean: ["We're helping our friend while they"],
      corrupted: ["We are helping our friend while they"],
      answers,
      target,
    });
  if (names.includes("resid_pre_sweep")) out.resid_pre_sweep = sweep({ kind: "resid_pre" });
  if (names.includes("heads_every_sweep")) out.heads_every_sweep = sweep({ kind: "head_all" });
  if (names.includes("eap_all_edges")) {
    const t = new task.CircuitTask(model, {
      clean: [clean],
      corrupted: [corrupted],
      answer: [answers.answer],
      wrong: [answers.wrong],
    });
    out.eap_all_edges = () => t.gradientScores(1);
  }
  return out;
}

/**
 * Medians of each workload over `rounds` interleaved rounds (after two warm-up rounds), `before` being
 * the checkout at `otherRoot` and `after` this one.
 */
export async function benchAb(opts: {
  otherRoot: string;
  thisRoot: string;
  rounds: number;
  only?: readonly AbWorkload[];
  log?: (line: string) => void;
}): Promise<Record<string, AbFigure>> {
  const names = opts.only ?? AB_WORKLOADS;
  const before = await loadWorkloads(opts.otherRoot, names);
  const after = await loadWorkloads(opts.thisRoot, names);
  const median = (x: number[]) => [...x].sort((a, b) => a - b)[x.length >> 1];
  const timed = async (w: Workload) => {
    const t0 = performance.now();
    await w();
    return performance.now() - t0;
  };
  const figures: Record<string, AbFigure> = {};
  for (const name of names) {
    const times = { before: [] as number[], after: [] as number[] };
    for (let round = -2; round < opts.rounds; round++) {
      const order = round % 2 === 0 ? (["before", "after"] as const) : (["after", "before"] as const);
      for (const side of order) {
        const ms = await timed((side === "before" ? before : after)[name]);
        if (round >= 0) times[side].push(ms);
      }
    }
    const b = median(times.before);
    const a = median(times.after);
    figures[name] = { before_ms: b, after_ms: a, ratio: a / b, rounds: opts.rounds };
    opts.log?.(
      `${name}: before ${b.toFixed(1)} ms, after ${a.toFixed(1)} ms (x${(a / b).toFixed(3)}, medians of ${opts.rounds})`,
    );
  }
  return figures;
}
