/** A small corpus and the one-process index that sharded runs of `index` must reproduce. */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { runCli } from "../helpers/cli.ts";

const NAMES = ["Lily", "Tim", "Sue", "Ben", "Max", "Mia"];
const PLACES = ["park", "garden", "forest", "lake", "beach", "shop"];

/** Short stories in the bundled model's vocabulary: enough contexts that every shard gets several. */
export function writeStories(path: string): void {
  const paragraphs: string[] = [];
  for (let i = 0; i < 24; i++) {
    const name = NAMES[i % NAMES.length];
    const place = PLACES[(i * 5) % PLACES.length];
    paragraphs.push(
      `Once upon a time, ${name} went to the ${place}. ${name} saw a big red ball and a little dog. ` +
        `The dog was happy and they played all day. At night, ${name} went home and slept.`,
    );
  }
  writeFileSync(path, `${paragraphs.join("\n\n")}\n`);
}

export const INDEX_ARGS = [
  "--model",
  "stories260k",
  "--context-len",
  "32",
  "--batch-size",
  "4",
  "--top-k",
  "5",
];

export async function buildSingleIndex(cwd: string, corpus: string, out: string): Promise<void> {
  const r = await runCli(["index", ...INDEX_ARGS, "--corpus", corpus, "--out", out], {}, cwd);
  assert.equal(r.code, 0, r.stderr);
}

export function shardPaths(workDir: string, n: number): string[] {
  return Array.from({ length: n }, (_, i) => join(workDir, "shards", String(i)));
}

/** A pod's container, as the Job manifests give it. */
export interface Container {
  command: string[];
  workingDir: string;
  env: { name: string; value: string }[];
}

/** Runs a container's command as the kubelet would, on this machine. */
export function runPod(container: Container, index?: number): { status: number | null; stderr: string } {
  const argv = container.command.map((w) =>
    index === undefined ? w : w.replaceAll("$(JOB_COMPLETION_INDEX)", String(index)),
  );
  const env = { ...process.env, ...Object.fromEntries(container.env.map((e) => [e.name, e.value])) };
  if (index !== undefined) env.JOB_COMPLETION_INDEX = String(index);
  // A pod that hangs is killed (SIGKILL) rather than left running past the test.
  const r = spawnSync(argv[0], argv.slice(1), {
    cwd: container.workingDir,
    env,
    encoding: "utf8",
    killSignal: "SIGKILL",
    timeout: 300_000,
  });
  return { status: r.status, stderr: r.stderr };
}
