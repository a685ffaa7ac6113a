/**
 * Peak memory of one attribution graph in a fresh child process, so that the figure is the graph's own (not
 * the bench process's other models): the child loads the model checkpoint and the transcoder set from disk as
 * the `graph` command does, builds the graph once, and reports its RSS after imports (baseline), VmHWM after
 * each phase (load model, load transcoders, graph) and the graph's wall and CPU time.
 *
 * Usage (the parent, bench/graph.ts, writes the inputs): node --expose-gc --import tsx bench/graph-memory.ts
 * --child SPEC.json, where SPEC.json is a `GraphMemorySpec`.
 */
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { settle, statusBytes } from "./memory.ts";

export interface GraphMemorySpec {
  modelDir: string;
  setDir: string;
  tokens: number[];
  targets: number[];
  backend: string;
}

export interface GraphMemoryFigures {
  /** RSS after imports, before loading anything (MB). */
  baselineMb: number;
  /** VmHWM after loading the model, after loading the transcoders, after the graph (MB). */
  peakAfterModelMb: number;
  peakAfterTranscodersMb: number;
  peakMb: number;
  wallS: number;
  cpuS: number;
  features: number;
  nodes: number;
}

const MB = 2 ** 20;

async function child(specPath: string): Promise<void> {
  const spec = JSON.parse(readFileSync(specPath, "utf8")) as GraphMemorySpec;
  const { HookedTransformer } = await import("../src/model/hooked-transformer.ts");
  const { loadTranscoderSet } = await import("../src/graphs/transcoder-set.ts");
  const { attributeGraph } = await import("../src/graphs/attribute-graph.ts");
  const { nodeRanges } = await import("../src/graphs/attribution-graph.ts");
  await settle();
  const baseline = statusBytes("VmRSS");
  const model = await HookedTransformer.fromPretrained(spec.modelDir, { backend: spec.backend as "onnx" });
  const peakAfterModel = statusBytes("VmHWM");
  const set = await loadTranscoderSet(spec.setDir);
  const peakAfterTranscoders = statusBytes("VmHWM");
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  const { graph } = await attributeGraph(model, spec.tokens, set, { targets: spec.targets });
  const wallS = (performance.now() - t0) / 1000;
  const c = process.cpuUsage(c0);
  const figures: GraphMemoryFigures = {
    baselineMb: baseline / MB,
    peakAfterModelMb: peakAfterModel / MB,
    peakAfterTranscodersMb: peakAfterTranscoders / MB,
    peakMb: statusBytes("VmHWM") / MB,
    wallS,
    cpuS: (c.user + c.system) / 1e6,
    features: graph.features.length,
    nodes: nodeRanges(graph).nNodes,
  };
  model.dispose();
  process.stdout.write(`${JSON.stringify(figures)}\n`);
}

/** Builds the graph of `spec` in a fresh child and returns its figures (the child's last stdout line). */
export function measureGraphMemory(specPath: string): GraphMemoryFigures {
  const out = execFileSync(
    process.execPath,
    ["--expose-gc", "--import", "tsx", fileURLToPath(import.meta.url), "--child", specPath],
    { encoding: "utf8", stdio: ["ignore", "pipe", "inherit"], killSignal: "SIGKILL" },
  );
  return JSON.parse(out.trim().split("\n").pop()!) as GraphMemoryFigures;
}

if (import.meta.url === `file://${process.argv[1]}` && process.argv[2] === "--child")
  await child(process.argv[3]);
