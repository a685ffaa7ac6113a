/**
 * Benchmark: load a GPT-2-small-shaped random checkpoint (124M parameters) and report time and peak
 * memory against the float32 weights' size. Each load runs in a fresh child process so its peak RSS
 * is its own. Usage: node --import tsx bench/weights-load.ts [F32|F16|BF16 ...]
 */
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { loadCheckpoint, makeRandomCheckpoint } from "../src/weights/checkpoint.ts";
import type { SafetensorsWriteDtype } from "../src/weights/safetensors.ts";
import { GPT2_SMALL_CONFIG } from "./gpt2-small.ts";

const MB = 1024 * 1024;

if (process.argv[2] === "--load") {
  // Child: load once, print JSON.
  const rssBefore = process.memoryUsage().rss;
  const t0 = performance.now();
  const ckpt = loadCheckpoint(process.argv[3]);
  const ms = performance.now() - t0;
  let floats = 0;
  for (const t of ckpt.tensors.values()) floats += t.data.length;
  const peakRss = process.resourceUsage().maxRSS * 1024;
  console.log(JSON.stringify({ ms, floats, rssBefore, peakRss }));
} else {
  const dtypes = (
    process.argv.slice(2).length ? process.argv.slice(2) : ["F32", "F16"]
  ) as SafetensorsWriteDtype[];
  for (const dtype of dtypes) {
    const dir = mkdtempSync(join(tmpdir(), "cs-bench-weights-"));
    try {
      const t0 = performance.now();
      makeRandomCheckpoint(dir, GPT2_SMALL_CONFIG, { seed: 1, dtype });
      const writeMs = performance.now() - t0;
      const fileMb = statSync(join(dir, "model.safetensors")).size / MB;
      const out = execFileSync(
        process.execPath,
        ["--import", "tsx", fileURLToPath(import.meta.url), "--load", dir],
        {
          encoding: "utf8",
        },
      );
      const r = JSON.parse(out) as { ms: number; floats: number; rssBefore: number; peakRss: number };
      const weightsMb = (r.floats * 4) / MB;
      console.log(
        `${dtype}: file ${fileMb.toFixed(0)} MB, write ${(writeMs / 1000).toFixed(1)} s | load ${(r.ms / 1000).toFixed(2)} s, ` +
          `float32 weights ${weightsMb.toFixed(0)} MB, peak RSS ${(r.peakRss / MB).toFixed(0)} MB ` +
          `(${((r.peakRss - r.rssBefore) / MB).toFixed(0)} MB above start = ${((r.peakRss - r.rssBefore) / (r.floats * 4)).toFixed(2)}x weights)`,
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }
}
