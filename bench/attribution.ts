/**
 * Benchmark: the attribution analyses on a random GPT-2-small-shaped checkpoint (built on the spot).
 * One cached forward, then the median wall time of each analysis. Figures only; nothing is asserted.
 * Usage: node --import tsx bench/attribution.ts [--json] [--batch N] [--tokens N] [--backend onnx|reference] [--circuits]
 */
import { parseArgs } from "node:util";
import { attributionHookNames } from "../src/analysis/attribute.ts";
import { compositionScores, fullQkCircuit } from "../src/analysis/circuits.ts";
import { logitAttrs, logitDiffDirections, neuronLogitAttrs } from "../src/analysis/logit-attribution.ts";
import { accumulatedResid, decomposeResid, stackHeadResults } from "../src/analysis/residual-stack.ts";
import { mulberry32 } from "../src/util/random.ts";
import { medianMs, randomGpt2Small } from "./gpt2-small.ts";

const { values: args } = parseArgs({
  options: {
    json: { type: "boolean", default: false },
    batch: { type: "string", default: "8" },
    tokens: { type: "string", default: "32" },
    backend: { type: "string", default: "onnx" },
    circuits: { type: "boolean", default: false },
  },
});
const say = (line: string) => {
  if (!args.json) process.stderr.write(`${line}\n`);
};
const batch = Number(args.batch);
const tokens = Number(args.tokens);

say("building a random GPT-2-small-shaped checkpoint ...");
const model = randomGpt2Small({ backend: args.backend as "onnx" | "reference" });
const rng = mulberry32(1);
// Different lengths, so the padded-batch path (each prompt's own final position) is what is timed.
const prompts = Array.from({ length: batch }, (_, b) =>
  Array.from({ length: tokens - (b % 4) }, () => Math.floor(rng() * 50000)),
);
const figures: Record<string, number> = { batch, tokens };
const filter = attributionHookNames(model.cfg).concat(
  Array.from({ length: model.cfg.nLayers }, (_, l) => `blocks.${l}.mlp.hook_post`),
);
let out = model.runWithCache(prompts, { namesFilter: filter, logits: "last" });
figures.cached_forward_ms = medianMs(() => {
  out = model.runWithCache(prompts, { namesFilter: filter, logits: "last" });
}, 3);
const { cache } = out;
const dirs = logitDiffDirections(model, 821, 389, batch);
const time = (name: string, fn: () => void, runs = 5) => {
  figures[name] = medianMs(fn, runs);
  say(`${name.padEnd(32)} ${figures[name].toFixed(2)} ms`);
};
say(`cached forward (batch ${batch}, ${tokens} tokens): ${figures.cached_forward_ms.toFixed(1)} ms`);
time("accumulated_resid_attr_ms", () =>
  logitAttrs(model, cache, accumulatedResid(model, cache, { inclMid: true }), dirs),
);
time("accumulated_resid_logit_lens_ms", () =>
  logitAttrs(model, cache, accumulatedResid(model, cache, { inclMid: true }), dirs, { ln: "recompute" }),
);
time("decompose_resid_attr_ms", () => logitAttrs(model, cache, decomposeResid(model, cache), dirs));
time("head_attr_ms", () => logitAttrs(model, cache, stackHeadResults(model, cache), dirs));
time("neuron_attr_projected_ms", () => neuronLogitAttrs(model, cache, dirs));
// Circuits (about a second each on the onnx backend; the vocabulary-sized products dominate): only with --circuits.
if (args.circuits) {
  time("full_qk_circuit_svd_ms", () => fullQkCircuit(model, 5, 1).singularValues(), 1);
  time("composition_scores_q_ms", () => compositionScores(model, "Q"), 1);
}
if (args.json) process.stdout.write(`${JSON.stringify(figures)}\n`);
