/**
 * Attribution graphs over a prompt file, in shards: the pods of the Kubernetes Indexed Job `kubernetes graph`
 * writes (run out of order, one twice, as the Job controller may) and the merge Job give the files of a
 * one-process `graph --prompts` run byte for byte, and each graph is the one `graph --prompt` writes alone;
 * missing, doubled, foreign and unfinished shards are refused by name; `slurm graph` writes the array job and
 * its graph-merge. (Simulated engines: no real Slurm run here — see test/scale-out/slurm.test.ts for one.)
 */
import assert from "node:assert/strict";
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { Job } from "kubernetes-models/batch/v1/Job";
import { parse } from "yaml";
import { parseGraphPrompts } from "../../src/cli/graph-prompts.ts";
import { writeTranscoderSet } from "../../src/graphs/transcoder-set.ts";
import { runCli } from "../helpers/cli.ts";
import { REPO_ROOT } from "../helpers/fixture.ts";
import { randomTranscoderSet } from "../helpers/random-transcoder.ts";
import { type Container, runPod } from "./sharded-index.ts";

const mount = mkdtempSync(join(tmpdir(), "cs-graph-prompts-"));
after(() => rmSync(mount, { recursive: true, force: true }));

const PROMPTS = [
  { prompt: "Once upon a time, there was a little girl", target: [" was", " a"] },
  { prompt: "Lily went to the park. She" },
  { prompt: "Tom had a big red ball", target: " and" },
  { prompt: "The sun was hot and the dog" },
  { prompt: "One day, a bird flew to the tree" },
];
const GRAPH_ARGS = ["--model", "stories260k", "--transcoders", "tc", "--prompts", "prompts.jsonl"];

before(async () => {
  const jump = (l: number) => l % 2 === 0;
  const skip = (l: number) => l === 3;
  await writeTranscoderSet(
    join(mount, "tc"),
    randomTranscoderSet({ layers: 5, dModel: 64, dTc: 16, seed: 7, jump, skip, modelName: "stories260k" }),
  );
  writeFileSync(join(mount, "prompts.jsonl"), `${PROMPTS.map((p) => JSON.stringify(p)).join("\n")}\n`);
});

/** Every file under `dir` (relative path → bytes), but the raw directories' markers (they carry a time). */
function filesOf(dir: string): Map<string, Buffer> {
  const files = readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((e) => e.isFile() && e.name !== ".circuitscope-report.json" && e.name !== "graph-shard.json")
    .map((e) => join(e.parentPath, e.name).slice(dir.length + 1));
  return new Map(files.sort().map((f) => [f, readFileSync(join(dir, f))]));
}

interface JobDoc {
  spec: { completions?: number; completionMode?: string; template: { spec: { containers: Container[] } } };
}

describe("graph --prompts in shards", () => {
  test("prompt files: plain lines or JSONL with prompt and target; bad lines named", () => {
    assert.deepEqual(parseGraphPrompts("a b\n\nc d\n", "f"), [
      { prompt: "a b", targets: [] },
      { prompt: "c d", targets: [] },
    ]);
    assert.deepEqual(parseGraphPrompts('{"prompt":"x","target":" y"}\n{"prompt":"z"}\n', "f"), [
      { prompt: "x", targets: [" y"] },
      { prompt: "z", targets: [] },
    ]);
    assert.throws(() => parseGraphPrompts('{"prompt":"x"}\n{"text":"z"}\n', "f"), /f line 2 has no "prompt"/);
    assert.throws(() => parseGraphPrompts('{"prompt":"x","target":3}\n', "f"), /f line 1: "target"/);
  });

  test("kubernetes graph: valid Jobs; pods (out of order, one twice) + merge = one process, byte for byte", async () => {
    const launcher = `${process.execPath} ${join(REPO_ROOT, "bin/circuitscope.js")}`;
    const manifests = join(mount, "jobs");
    const r = await runCli(
      [
        "kubernetes",
        "graph",
        ...GRAPH_ARGS,
        "--raw-each",
        "--shards",
        "3",
        "--out",
        join(mount, "work"),
        "--image",
        "ghcr.io/example/circuitscope:0.1.0",
        "--claim",
        "interp-data",
        "--mount-path",
        mount,
        "--manifests",
        manifests,
        "--circuitscope",
        launcher,
      ],
      {},
      mount,
    );
    assert.equal(r.code, 0, r.stderr);
    const shardsDoc = parse(readFileSync(join(manifests, "job.yaml"), "utf8")) as JobDoc;
    const mergeDoc = parse(readFileSync(join(manifests, "merge-job.yaml"), "utf8")) as JobDoc;
    new Job(shardsDoc as never).validate();
    new Job(mergeDoc as never).validate();
    assert.equal(shardsDoc.spec.completionMode, "Indexed");
    assert.equal(shardsDoc.spec.completions, 3);
    for (const i of [2, 0, 1, 0]) {
      const pod = runPod(shardsDoc.spec.template.spec.containers[0], i);
      assert.equal(pod.status, 0, pod.stderr);
    }
    const merge = runPod(mergeDoc.spec.template.spec.containers[0]);
    assert.equal(merge.status, 0, merge.stderr);

    const one = await runCli(["graph", ...GRAPH_ARGS, "--raw-each", "--out", "one"], {}, mount);
    assert.equal(one.code, 0, one.stderr);
    const merged = filesOf(join(mount, "work", "merged"));
    const single = filesOf(join(mount, "one"));
    assert.deepEqual([...merged.keys()], [...single.keys()]);
    assert.ok([...merged.keys()].includes("raw/4/adjacency.safetensors"));
    for (const [f, bytes] of single) assert.ok(bytes.equals(merged.get(f) as Buffer), f);

    // Independently: prompt 2's graph is the one `graph --prompt` writes for it alone, and the index holds
    // that run's scores and feature count.
    const alone = await runCli(
      [
        "graph",
        "--model",
        "stories260k",
        "--transcoders",
        "tc",
        "--prompt",
        PROMPTS[2].prompt,
        "--target",
        " and",
        "--out",
        "alone.json",
        "--json",
      ],
      {},
      mount,
    );
    assert.equal(alone.code, 0, alone.stderr);
    assert.ok(readFileSync(join(mount, "alone.json")).equals(merged.get("graphs/2.json") as Buffer));
    const index = JSON.parse(readFileSync(join(mount, "work", "merged", "index.json"), "utf8"));
    const stats = JSON.parse(alone.stdout);
    assert.equal(index.graphs.length, PROMPTS.length);
    assert.deepEqual(
      {
        prompt: index.graphs[2].prompt,
        graph: index.graphs[2].graph,
        replacement: index.graphs[2].replacement_score,
        completeness: index.graphs[2].completeness_score,
        features: index.graphs[2].n_features,
      },
      {
        prompt: PROMPTS[2].prompt,
        graph: "graphs/2.json",
        replacement: stats.replacement_score,
        completeness: stats.completeness_score,
        features: stats.n_features,
      },
    );
  });

  test("a missing, doubled, foreign or unfinished shard is refused by name; nothing is merged", async () => {
    const s = (i: number) => join(mount, "work", "shards", String(i));
    const missing = await runCli(["graph-merge", s(0), s(2), "--out", "m1"], {}, mount);
    assert.notEqual(missing.code, 0);
    assert.match(missing.stderr, /Missing shard 1\/3: run graph --prompts … --shard 1\/3/);
    const twice = await runCli(["graph-merge", s(0), s(1), s(1), s(2), "--out", "m2"], {}, mount);
    assert.notEqual(twice.code, 0);
    assert.match(twice.stderr, /Shard 1\/3 is given twice/);
    const other = await runCli(
      ["graph", ...GRAPH_ARGS, "--edge-threshold", "0.9", "--shard", "1/3", "--out", "other"],
      {},
      mount,
    );
    assert.equal(other.code, 0, other.stderr);
    const foreign = await runCli(["graph-merge", s(0), "other", s(2), "--out", "m3"], {}, mount);
    assert.notEqual(foreign.code, 0);
    assert.match(foreign.stderr, /Shard 1\/3 in other is from another run .*edgeThreshold: 0\.98 vs 0\.9/);
    // A shard stopped after its first prompt (its manifest says so) is refused until resumed.
    const cut = join(mount, "cut");
    const copy = await runCli(
      ["graph", ...GRAPH_ARGS, "--raw-each", "--shard", "1/3", "--out", cut],
      {},
      mount,
    );
    assert.equal(copy.code, 0, copy.stderr);
    const manifest = JSON.parse(readFileSync(join(cut, "graph-shard.json"), "utf8"));
    writeFileSync(
      join(cut, "graph-shard.json"),
      JSON.stringify({ ...manifest, graphs: manifest.graphs.slice(0, 1), complete: false }),
    );
    const unfinished = await runCli(["graph-merge", s(0), cut, s(2), "--out", "m4"], {}, mount);
    assert.notEqual(unfinished.code, 0);
    assert.match(
      unfinished.stderr,
      /Shard 1\/3 in \S+cut is unfinished \(1 of 2 graphs\): run it again with --resume/,
    );
    for (const m of ["m1", "m2", "m3", "m4"])
      assert.throws(() => readdirSync(join(mount, m)), /ENOENT/, `${m} was not written`);
    const again = await runCli(
      ["graph", ...GRAPH_ARGS, "--raw-each", "--shard", "1/3", "--out", cut],
      {},
      mount,
    );
    assert.notEqual(again.code, 0);
    assert.match(again.stderr, /already holds a graph shard: pass --resume/);
    // --resume does the rest (the second prompt) and the merge is the same set again.
    const resumed = await runCli(
      ["graph", ...GRAPH_ARGS, "--raw-each", "--shard", "1/3", "--out", cut, "--resume"],
      {},
      mount,
    );
    assert.equal(resumed.code, 0, resumed.stderr);
    const m5 = await runCli(["graph-merge", s(2), cut, s(0), "--out", "m5"], {}, mount);
    assert.equal(m5.code, 0, m5.stderr);
    for (const f of ["index.json", "graphs/2.json", "graphs/3.json"])
      assert.ok(readFileSync(join(mount, "m5", f)).equals(readFileSync(join(mount, "one", f))), f);
  });

  test("slurm graph writes the array of shards and its graph-merge", async () => {
    const r = await runCli(
      ["slurm", "graph", ...GRAPH_ARGS, "--shards", "2", "--out", "sl", "--json"],
      {},
      mount,
    );
    assert.equal(r.code, 0, r.stderr);
    assert.match(
      readFileSync(join(mount, "sl", "shards.sbatch"), "utf8"),
      /#SBATCH --array=0-1[\s\S]*graph --model stories260k --transcoders tc --prompts prompts\.jsonl --shard auto\/2 --out \S+\/sl\/shards\/"\$SLURM_ARRAY_TASK_ID" --resume/,
    );
    assert.match(
      readFileSync(join(mount, "sl", "merge.sbatch"), "utf8"),
      /graph-merge \S+\/sl\/shards\/0 \S+\/sl\/shards\/1 --out \S+\/sl\/merged/,
    );
    const noPrompts = await runCli(
      ["slurm", "graph", "--transcoders", "tc", "--shards", "2", "--out", "sl2"],
      {},
      mount,
    );
    assert.notEqual(noPrompts.code, 0);
    assert.match(noPrompts.stderr, /graph needs --prompts to be sharded/);
  });
});
