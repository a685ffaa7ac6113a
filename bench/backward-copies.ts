/**
 * Attribution patching with the backward copies of the weights kept or released
 * (src/gradients/backward-copies.ts), for docs/benchmarks.md "Memory". Run under `/usr/bin/time -v` for
 * the peak RSS:
 *   node --import tsx bench/backward-copies.ts DIR keep|release|auto [--pairs N] [--calls N]
 * Prints the load time, each call's time, the RSS after each call and the bytes of backward copies held.
 */
import { parseArgs } from "node:util";
import { type BackwardCopies, backwardCopyBytes } from "../src/gradients/backward-copies.ts";
import { HookedTransformer } from "../src/model/hooked-transformer.ts";
import { attributionPatchingAll } from "../src/patching/attribution-patching.ts";
import { formatBytes } from "../src/util/memory-budget.ts";
import { ALL_ATTRIBUTION_TARGETS } from "./attribution-patching.ts";

const { positionals, values } = parseArgs({
  allowPositionals: true,
  options: { pairs: { type: "string", default: "4" }, calls: { type: "string", default: "2" } },
});
const [dir, copies] = positionals;
if (!dir || !["keep", "release", "auto"].includes(copies)) {
  console.error(
    "usage: node --import tsx bench/backward-copies.ts DIR keep|release|auto [--pairs N] [--calls N]",
  );
  process.exit(2);
}
const rss = () => formatBytes(process.memoryUsage().rss);
let t = performance.now();
const model = await HookedTransformer.fromPretrained(dir);
console.log(`load: ${((performance.now() - t) / 1000).toFixed(1)} s, rss ${rss()}`);

const pairs = Number(values.pairs);
const cleanText = "When Mary and John went to the store, John gave a drink to";
const corruptText = "When Mary and John went to the store, Mary gave a drink to";
const clean = Array.from({ length: pairs }, () => model.toTokens(cleanText));
const corrupted = Array.from({ length: pairs }, () => model.toTokens(corruptText));
const answers = { answer: model.toSingleToken(" Mary"), wrong: model.toSingleToken(" John") };
for (let call = 1; call <= Number(values.calls); call++) {
  t = performance.now();
  attributionPatchingAll(model, {
    clean,
    corrupted,
    answers,
    targets: ALL_ATTRIBUTION_TARGETS,
    backwardCopies: copies as BackwardCopies,
  });
  console.log(
    `call ${call} (${pairs} pairs of ${clean[0].length} tokens, every residual cell, head and neuron): ` +
      `${((performance.now() - t) / 1000).toFixed(1)} s, rss ${rss()}, ` +
      `backward copies held ${formatBytes(backwardCopyBytes(model))}`,
  );
}
model.dispose();
