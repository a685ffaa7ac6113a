/**
 * There is no Kubernetes cluster here: the Indexed Job is checked against the Job schema (kubernetes-models'
 * validator of the OpenAPI definitions), then each pod is simulated the way the Job controller starts it —
 * JOB_COMPLETION_INDEX set, $(JOB_COMPLETION_INDEX) expanded in the command — and the merge Job run after.
 */
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import { Job } from "kubernetes-models/batch/v1/Job";
import { parse } from "yaml";
import { runCli } from "../helpers/cli.ts";
import { REPO_ROOT } from "../helpers/fixture.ts";
import { storeFiles } from "../helpers/index-files.ts";
import { buildSingleIndex, type Container, INDEX_ARGS, runPod, writeStories } from "./sharded-index.ts";

const mount = mkdtempSync(join(tmpdir(), "cs-k8s-"));
after(() => rmSync(mount, { recursive: true, force: true }));

interface JobDoc {
  spec: { completions?: number; completionMode?: string; template: { spec: { containers: Container[] } } };
}

describe("kubernetes: an Indexed Job of shards, then a merge Job", () => {
  const launcher = `${process.execPath} ${join(REPO_ROOT, "bin/circuitscope.js")}`;
  const manifests = join(mount, "jobs");

  test("the manifests are valid Jobs, and running their pods gives the one-process index", async () => {
    writeStories(join(mount, "stories.txt"));
    const r = await runCli(
      [
        "kubernetes",
        "index",
        ...INDEX_ARGS,
        "--corpus",
        "stories.txt",
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
        "--memory",
        "2Gi",
        "--manifests",
        manifests,
        "--circuitscope",
        launcher,
        "--json",
      ],
      {},
      mount,
    );
    assert.equal(r.code, 0, r.stderr);
    const shardsDoc = parse(readFileSync(join(manifests, "job.yaml"), "utf8")) as JobDoc;
    const mergeDoc = parse(readFileSync(join(manifests, "merge-job.yaml"), "utf8")) as JobDoc;
    // The Job schema: throws on any field of the wrong type or name.
    new Job(shardsDoc as never).validate();
    new Job(mergeDoc as never).validate();
    assert.equal(shardsDoc.spec.completionMode, "Indexed");
    assert.equal(shardsDoc.spec.completions, 3);
    // A pod of the wrong shape would fail the schema: the validator is not a no-op.
    assert.throws(() =>
      new Job({ ...shardsDoc, spec: { ...shardsDoc.spec, completions: "three" } } as never).validate(),
    );

    const [shardPod] = shardsDoc.spec.template.spec.containers;
    // Indexes run in any order (the controller gives no order); one pod is re-run, as a retry would.
    for (const i of [2, 0, 1, 0]) {
      const pod = runPod(shardPod, i);
      assert.equal(pod.status, 0, pod.stderr);
    }
    const merge = runPod(mergeDoc.spec.template.spec.containers[0]);
    assert.equal(merge.status, 0, merge.stderr);

    await buildSingleIndex(mount, "stories.txt", join(mount, "single"));
    assert.deepEqual(storeFiles(join(mount, "work", "merged")), storeFiles(join(mount, "single")));
  });

  test("sae harvest: valid Jobs; its pods and the training Job give the SAE of a one-process harvest", async () => {
    const stories = readFileSync(join(REPO_ROOT, "models/stories260k-saes/stories-140k-seed0.jsonl"), "utf8");
    writeFileSync(join(mount, "stories.jsonl"), `${stories.split("\n").slice(0, 40).join("\n")}\n`);
    const harvest = ["--hook", "blocks.1.hook_resid_pre", "--corpus", "stories.jsonl", "--context", "32"];
    const train = ["--d-sae", "32", "--k", "4", "--tokens", "2048", "--batch-size", "128", "--seed", "1"];
    const saeJobs = join(mount, "sae-jobs");
    const r = await runCli(
      [
        "kubernetes",
        "sae",
        "harvest",
        ...harvest,
        "--shards",
        "2",
        "--out",
        join(mount, "sae-work"),
        "--merge-options",
        train.join(" "),
        "--image",
        "ghcr.io/example/circuitscope:0.1.0",
        "--claim",
        "interp-data",
        "--mount-path",
        mount,
        "--manifests",
        saeJobs,
        "--circuitscope",
        launcher,
      ],
      {},
      mount,
    );
    assert.equal(r.code, 0, r.stderr);
    const shardsDoc = parse(readFileSync(join(saeJobs, "job.yaml"), "utf8")) as JobDoc;
    const mergeDoc = parse(readFileSync(join(saeJobs, "merge-job.yaml"), "utf8")) as JobDoc;
    new Job(shardsDoc as never).validate();
    new Job(mergeDoc as never).validate();
    for (const i of [1, 0, 1]) {
      const pod = runPod(shardsDoc.spec.template.spec.containers[0], i);
      assert.equal(pod.status, 0, pod.stderr);
    }
    const merge = runPod(mergeDoc.spec.template.spec.containers[0]);
    assert.equal(merge.status, 0, merge.stderr);
    const one = await runCli(["sae", "harvest", ...harvest, "--out", "one-harvest"], {}, mount);
    assert.equal(one.code, 0, one.stderr);
    const single = await runCli(
      ["sae", "train", "--activations", "one-harvest", ...train, "--out", "one-sae"],
      {},
      mount,
    );
    assert.equal(single.code, 0, single.stderr);
    assert.ok(
      readFileSync(join(mount, "sae-work", "merged", "sae_weights.safetensors")).equals(
        readFileSync(join(mount, "one-sae", "sae_weights.safetensors")),
      ),
    );
  });

  test("a pod started without its index, or with one past the count, fails clearly", () => {
    const shardsDoc = parse(readFileSync(join(manifests, "job.yaml"), "utf8")) as JobDoc;
    const [pod] = shardsDoc.spec.template.spec.containers;
    const noIndex = runPod({
      ...pod,
      command: pod.command.map((w) => w.replace("$(JOB_COMPLETION_INDEX)", "x")),
    });
    assert.notEqual(noIndex.status, 0);
    assert.match(noIndex.stderr, /neither SLURM_ARRAY_TASK_ID .* nor JOB_COMPLETION_INDEX/);
    const past = runPod(pod, 3);
    assert.notEqual(past.status, 0);
    assert.match(past.stderr, /JOB_COMPLETION_INDEX=3 is not below the 3 shards/);
  });

  test("a work directory outside the volume, or a job directory circuitscope did not write, is refused", async () => {
    const outside = await runCli(
      [
        "kubernetes",
        "index",
        "--corpus",
        "c.txt",
        "--shards",
        "2",
        "--out",
        "/elsewhere/work",
        "--image",
        "i",
        "--claim",
        "c",
        "--mount-path",
        mount,
        "--manifests",
        join(mount, "jobs2"),
      ],
      {},
      mount,
    );
    assert.notEqual(outside.code, 0);
    assert.match(outside.stderr, /not under the volume's mount path/);
    const taken = await runCli(
      [
        "kubernetes",
        "index",
        "--corpus",
        "c.txt",
        "--shards",
        "2",
        "--out",
        join(mount, "w2"),
        "--image",
        "i",
        "--claim",
        "c",
        "--mount-path",
        mount,
        "--manifests",
        join(mount, "work"),
      ],
      {},
      mount,
    );
    assert.notEqual(taken.code, 0);
    assert.match(taken.stderr, /not written by circuitscope's scale-out/);
  });
});
