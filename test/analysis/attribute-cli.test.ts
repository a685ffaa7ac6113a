import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { promisify } from "node:util";
import { REPO_ROOT } from "../helpers/fixture.ts";
import { maxAbsDiff, referenceJson, referenceTensor } from "../helpers/reference.ts";

const run = promisify(execFile);
const BIN = "./bin/circuitscope.js";
const MODEL = "test/fixtures/tiny-gpt2";
const { prompts } = referenceJson;
const promptArgs = prompts.clean.flatMap((p) => ["--prompt", p]);
const tmp = mkdtempSync(join(tmpdir(), "cs-attribute-"));
after(() => rmSync(tmp, { recursive: true, force: true }));

async function attribute(args: string[]) {
  return run(BIN, ["attribute", "--model", MODEL, "--backend", "reference", ...args], { cwd: REPO_ROOT });
}

describe("circuitscope attribute", () => {
  it("--json reproduces the fixture's reference attribution", async () => {
    const html = join(tmp, "attr.html");
    const { stdout } = await attribute([
      ...promptArgs,
      "--answer",
      prompts.answer,
      "--wrong",
      prompts.wrong,
      "--json",
      "--html",
      html,
    ]);
    const out = JSON.parse(stdout);
    assert.ok(Math.abs(out.logitDiff - referenceJson.scalars.clean_logit_diff) < 1e-4);
    assert.deepEqual(out.accumulatedResid.labels, referenceJson.labels.accumulated_resid);
    assert.deepEqual(out.decomposeResid.labels, referenceJson.labels.decompose_resid);
    assert.ok(maxAbsDiff(out.accumulatedResid.values, referenceTensor("attr.accumulated_resid").data) < 1e-4);
    assert.ok(maxAbsDiff(out.decomposeResid.values, referenceTensor("attr.decompose_resid").data) < 1e-4);
    assert.ok(maxAbsDiff(out.heads.flat(), referenceTensor("attr.heads").data) < 1e-4);
    assert.equal(out.heads.length, 3);
    // The report holds the three figures: accumulated line, decomposed bars, layer x head heatmap.
    assert.equal(readFileSync(html, "utf8").match(/data-cs-figure="/g)?.length, 3);
  });

  it("--logit-lens normalises accumulated entries with their own statistics", async () => {
    const { stdout } = await attribute([
      ...promptArgs,
      "--answer",
      prompts.answer,
      "--wrong",
      prompts.wrong,
      "--logit-lens",
      "--json",
    ]);
    const out = JSON.parse(stdout);
    const d = maxAbsDiff(
      out.accumulatedResid.values,
      referenceTensor("attr.accumulated_resid_recomputed_ln").data,
    );
    assert.ok(d < 1e-4, `max |diff| ${d}`);
  });

  it("a multi-token --answer exits non-zero with a clear message", async () => {
    await assert.rejects(
      attribute([...promptArgs, "--answer", " helping our", "--wrong", prompts.wrong, "--json"]),
      (e: Error & { code?: number; stderr?: string }) => {
        assert.equal(e.code, 1);
        assert.match(e.stderr ?? "", /--answer: " helping our" is 2 tokens .*not a single token/);
        return true;
      },
    );
  });
});
