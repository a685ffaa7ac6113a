/**
 * The Pythia shapes (70m, 160m, 410m, 1b) and Gemma 3's text shapes (gemma-3-270m, gemma-3-1b) as seeded
 * random F16 checkpoints: each is written, loaded and run once (1 × 8 tokens), and the load time, forward
 * time and the process's peak resident memory are printed as one JSON line per shape. Too slow for the
 * tests (pythia-70m's shape is tested: test/model/pythia-shapes.test.ts). Run:
 * node --import tsx bench/pythia-shapes.ts [pythia-160m gemma-3-270m ...] (default: the Pythia shapes)
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { HookedTransformer } from "../src/model/hooked-transformer.ts";
import { loadCheckpoint, makeRandomCheckpoint } from "../src/weights/checkpoint.ts";
import { GEMMA3_SHAPES, gemma3ConfigJson } from "../src/weights/families/gemma3.ts";
import { PYTHIA_SHAPES } from "../src/weights/families/gpt-neox.ts";
import { parseHfConfig } from "../src/weights/families/index.ts";
import { peakRssMb } from "./gpt2-small.ts";

const SHAPES: Record<string, Record<string, unknown>> = {
  ...PYTHIA_SHAPES,
  ...Object.fromEntries(Object.keys(GEMMA3_SHAPES).map((n) => [n, gemma3ConfigJson(n)])),
};
const names = process.argv.slice(2).length ? process.argv.slice(2) : Object.keys(PYTHIA_SHAPES);
for (const name of names) {
  const json = SHAPES[name];
  if (!json) throw new Error(`Unknown shape ${name}: pick from ${Object.keys(SHAPES).join(", ")}`);
  const dir = mkdtempSync(join(tmpdir(), `circuitscope-${name}-`));
  try {
    makeRandomCheckpoint(dir, parseHfConfig(json, name), { seed: 1, dtype: "F16" });
    const t0 = performance.now();
    const model = HookedTransformer.fromCheckpoint(loadCheckpoint(dir));
    const t1 = performance.now();
    const logits = model.run([[1, 2, 3, 4, 5, 6, 7, 8]], { logits: "last" });
    const t2 = performance.now();
    const finite = logits.data.every(Number.isFinite);
    model.dispose();
    const out = { shape: name, load_ms: Math.round(t1 - t0), forward_1x8_ms: Math.round(t2 - t1), finite };
    console.log(JSON.stringify({ ...out, peak_rss_mb: peakRssMb() }));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
