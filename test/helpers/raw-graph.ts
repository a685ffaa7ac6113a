/** Reads what `graph --raw DIR` wrote: the node ids of nodes.json and the adjacency of adjacency.safetensors. */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { SafetensorsReader } from "../../src/weights/safetensors.ts";

export function readRawGraph(dir: string): { nodeIds: string[]; adjacency: Float32Array } {
  const nodes = JSON.parse(readFileSync(join(dir, "nodes.json"), "utf8")) as { node_id: string }[];
  const reader = SafetensorsReader.open(join(dir, "adjacency.safetensors"));
  try {
    return { nodeIds: nodes.map((n) => n.node_id), adjacency: reader.readFloat32("adjacency") };
  } finally {
    reader.close();
  }
}
