/**
 * `index --sae` is shardable: `circuitscope kubernetes index --sae DIR …` writes an Indexed Job whose pods (run
 * here as the Job controller would start them, as in kubernetes.test.ts) and merge give the one-process
 * feature index byte for byte.
 */
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { parse } from "yaml";
import { writeSaeLensDir } from "../../src/sae/saelens-dir.ts";
import { runCli } from "../helpers/cli.ts";
import { REPO_ROOT } from "../helpers/fixture.ts";
import { storeFiles } from "../helpers/index-files.ts";
import { randomSaeWeights, saeConfigFor } from "../helpers/random-sae.ts";
import { type Container, INDEX_ARGS, runPod, writeStories } from "./sharded-index.ts";

const mount = mkdtempSync(join(tmpdir(), "cs-feature-index-"));
after(() => rmSync(mount, { recursive: true, force: true }));

test("kubernetes index --sae: the pods and the merge give the one-process feature index", async () => {
  writeStories(join(mount, "stories.txt"));
  const hookName = "blocks.2.hook_resid_pre";
  await writeSaeLensDir(join(mount, "sae"), {
    cfg: saeConfigFor({ architecture: "topk", dIn: 64, dSae: 32, hookName, k: 4 }),
    weights: randomSaeWeights({ architecture: "topk", dIn: 64, dSae: 32, seed: 3 }),
  });
  const saeArgs = ["--sae", "sae", "--hist-max", "4", "--band-samples", "2"];
  const manifests = join(mount, "jobs");
  const r = await runCli(
    [
      "kubernetes",
      "index",
      ...INDEX_ARGS,
      ...saeArgs,
      "--corpus",
      "stories.txt",
      "--shards",
      "2",
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
      `${process.execPath} ${join(REPO_ROOT, "bin/circuitscope.js")}`,
      "--json",
    ],
    {},
    mount,
  );
  assert.equal(r.code, 0, r.stderr);
  const shardsDoc = parse(readFileSync(join(manifests, "job.yaml"), "utf8"));
  const mergeDoc = parse(readFileSync(join(manifests, "merge-job.yaml"), "utf8"));
  const shardPod = shardsDoc.spec.template.spec.containers[0] as Container;
  assert.ok(shardPod.command.includes("--sae"), "each shard indexes the SAE's features");
  for (const i of [1, 0]) {
    const pod = runPod(shardPod, i);
    assert.equal(pod.status, 0, pod.stderr);
  }
  const merge = runPod(mergeDoc.spec.template.spec.containers[0]);
  assert.equal(merge.status, 0, merge.stderr);

  const single = await runCli(
    ["index", ...INDEX_ARGS, ...saeArgs, "--corpus", "stories.txt", "--out", "single", "--json"],
    {},
    mount,
  );
  assert.equal(single.code, 0, single.stderr);
  const manifest = JSON.parse(single.stdout);
  assert.deepEqual(manifest.settings.sae, { path: "sae", hook: hookName, dSae: 32 });
  assert.equal(manifest.settings.bandSamples, 2);
  const merged = storeFiles(join(mount, "work", "merged"));
  assert.ok(merged.has("sample-scores.f32"), "the merged index keeps the band samples");
  assert.deepEqual(merged, storeFiles(join(mount, "single")));
});
