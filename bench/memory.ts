/**
 * Memory of a loaded model against its float32 weights: a fresh child process loads a checkpoint
 * directory with HookedTransformer.fromPretrained and runs one forward pass; the parent reads the child's
 * baseline RSS (after imports, before loading), peak RSS (VmHWM) and steady RSS (after load, a forward and
 * a garbage collection). Ratios are (RSS − baseline) / float32 weight bytes.
 * Usage: node --import tsx bench/memory.ts DIR [--backend onnx|reference]
 */
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";

export interface MemoryFigures {
  weight_bytes: number;
  baseline_rss_mb: number;
  load_peak_rss_mb: number;
  steady_rss_mb: number;
  load_peak_ratio: number;
  steady_ratio: number;
  load_s: number;
}

/** A /proc/self/status memory field in bytes (Linux). */
export function statusBytes(field: "VmRSS" | "VmHWM"): number {
  const m = readFileSync("/proc/self/status", "utf8").match(new RegExp(`^${field}:\\s+(\\d+) kB`, "m"));
  if (!m) throw new Error(`/proc/self/status has no ${field}: memory figures need Linux`);
  return Number(m[1]) * 1024;
}

/** A full garbage collection, twice, with time for V8 to free array buffers in the background. */
export async function settle(): Promise<void> {
  const gc = (globalThis as { gc?: () => void }).gc;
  for (let i = 0; i < 2; i++) {
    gc?.();
    await new Promise((r) => setTimeout(r, 200));
  }
}

async function child(dir: string, backend: string): Promise<void> {
  const { HookedTransformer } = await import("../src/model/hooked-transformer.ts");
  await settle();
  const baseline = statusBytes("VmRSS");
  const t0 = performance.now();
  const model = await HookedTransformer.fromPretrained(dir, { backend: backend as "onnx" });
  const loadS = (performance.now() - t0) / 1000;
  const peakAfterLoad = statusBytes("VmHWM");
  model.run("We're helping our friend while they", { logits: "last" });
  await settle();
  const steady = statusBytes("VmRSS");
  process.stdout.write(`${JSON.stringify({ baseline, peakAfterLoad, steady, loadS })}\n`);
}

/** Runs the measurement in a fresh child; `weightBytes` = float32 bytes of the checkpoint's parameters. */
export function measureModelMemory(dir: string, weightBytes: number, backend = "onnx"): MemoryFigures {
  const out = execFileSync(
    process.execPath,
    ["--expose-gc", "--import", "tsx", fileURLToPath(import.meta.url), "--child", dir, backend],
    {
      encoding: "utf8",
      stdio: ["ignore", "pipe", "inherit"],
    },
  );
  const r = JSON.parse(out.trim().split("\n").pop()!) as {
    baseline: number;
    peakAfterLoad: number;
    steady: number;
    loadS: number;
  };
  const MB = 1024 * 1024;
  return {
    weight_bytes: weightBytes,
    baseline_rss_mb: r.baseline / MB,
    load_peak_rss_mb: r.peakAfterLoad / MB,
    steady_rss_mb: r.steady / MB,
    load_peak_ratio: (r.peakAfterLoad - r.baseline) / weightBytes,
    steady_ratio: (r.steady - r.baseline) / weightBytes,
    load_s: r.loadS,
  };
}

/** float32 bytes of every tensor in a checkpoint directory's model.safetensors (header only). */
export async function checkpointFloat32Bytes(dir: string): Promise<number> {
  const { SafetensorsReader } = await import("../src/weights/safetensors.ts");
  const { join } = await import("node:path");
  const reader = SafetensorsReader.open(join(dir, "model.safetensors"));
  let floats = 0;
  for (const info of reader.tensors.values()) floats += info.shape.reduce((a, b) => a * b, 1);
  reader.close();
  return floats * 4;
}

// Only when run as a script: bench/graph-memory.ts imports this file in its own child.
const isMain = import.meta.url === `file://${process.argv[1]}`;
if (isMain && process.argv[2] === "--child") {
  await child(process.argv[3], process.argv[4] ?? "onnx");
} else if (isMain && process.argv[2]) {
  const backend = process.argv.includes("--backend")
    ? process.argv[process.argv.indexOf("--backend") + 1]
    : "onnx";
  const bytes = await checkpointFloat32Bytes(process.argv[2]);
  console.log(JSON.stringify(measureModelMemory(process.argv[2], bytes, backend), null, 1));
}
