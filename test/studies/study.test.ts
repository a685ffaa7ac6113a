/**
 * The whole study on the tiny fixture, in a test-size plan: the files are written atomically, and the
 * report's numbers match the analyses they come from, recomputed here directly.
 */
import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { summarize } from "../../src/analysis/stats.ts";
import { selectGroups } from "../../src/studies/contractions/groups.ts";
import {
  exactPatching,
  logitDiffsOf,
  residualAttributions,
} from "../../src/studies/contractions/measures.ts";
import { makePlan, type StudyPlan } from "../../src/studies/contractions/plan.ts";
import { generatePrompts, validatePairs } from "../../src/studies/contractions/prompts.ts";
import type { StudyResults } from "../../src/studies/contractions/results.ts";
import { runStudy } from "../../src/studies/contractions/run-study.ts";
import { writeStudy } from "../../src/studies/contractions/write-study.ts";
import { loadFixtureModel } from "../helpers/reference.ts";

const model = loadFixtureModel({ backend: "reference" });
const plan: StudyPlan = {
  ...makePlan({ quick: true, seed: 3, groups: ["'re/they", "'s/he", "'m/you"] }),
  perGroup: 5,
  focusPrompts: 6,
  positionPrompts: 2,
  exactNeurons: 3,
  exactHeads: 2,
  resamples: 300,
};
let dir: string;
let results: StudyResults;
let written: { captions: { name: string; caption: string }[] };

describe("contraction study on the tiny fixture", () => {
  before(async () => {
    dir = mkdtempSync(join(tmpdir(), "cs-study-"));
    results = await runStudy({ model, modelName: "tiny-gpt2", backend: "reference", plan, quiet: true });
    written = await writeStudy(results, join(dir, "out"));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it("writes report.html, results.json and one SVG per figure, and no temp directory", async () => {
    const out = join(dir, "out");
    assert.ok(existsSync(join(out, "report.html")));
    const json = JSON.parse(readFileSync(join(out, "results.json"), "utf8"));
    assert.equal(json.meta.seed, 3);
    const svgs = readdirSync(join(out, "figures"));
    assert.equal(svgs.length, written.captions.length);
    for (const f of svgs) assert.match(readFileSync(join(out, "figures", f), "utf8"), /^<svg/);
    assert.deepEqual(
      readdirSync(dir).filter((n) => n.includes("tmp")),
      [],
    );
    // The report is self-contained: no external scripts or stylesheets.
    const html = readFileSync(join(out, "report.html"), "utf8");
    assert.doesNotMatch(html, /<script[^>]+src=|<link[^>]+href=/);
    await assert.rejects(writeStudy(results, out), /already exists/);
  });

  it("uses the generated prompts of each group and reports their counts", () => {
    const focus = generatePrompts(selectGroups(["'re/they"]), 6, 3);
    assert.deepEqual(
      results.prompts.pairs.filter((p) => p.group === "'re/they").map((p) => p.clean),
      focus.map((p) => p.clean),
    );
    assert.deepEqual(
      results.prompts.groups.map((g) => [g.name, g.kept]),
      [
        ["'re/they", 6],
        ["'s/he", 5],
        ["'m/you", 5],
      ],
    );
  });

  it("logit differences and head attributions match a direct recomputation", () => {
    const pairs = validatePairs(generatePrompts(selectGroups(["'s/he"]), 5, 3), model.tokenizer).kept;
    const ans = pairs.map((p) => p.answerToken);
    const wr = pairs.map((p) => p.wrongToken);
    const clean = logitDiffsOf(
      model,
      pairs.map((p) => p.cleanTokens),
      ans,
      wr,
      1,
    );
    const g = results.groups.find((x) => x.name === "'s/he")!;
    for (const [i, v] of clean.entries()) assert.ok(Math.abs(g.cleanLogitDiff.perPrompt[i] - v) < 1e-4);
    const s = summarize(clean, { resamples: 10 });
    assert.ok(Math.abs(g.cleanLogitDiff.mean - s.mean) < 1e-4);
    assert.ok(Math.abs(g.cleanLogitDiff.se - s.se) < 1e-4);
    // The top head's value, in the caption, equals the mean DLA recomputed for that head.
    const attr = residualAttributions(
      model,
      pairs.map((p) => p.cleanTokens),
      ans,
      wr,
      1,
    );
    const top = g.topHeads![0];
    const mean = attr.heads.reduce((a, h) => a + h[top.row][top.col], 0) / attr.heads.length;
    assert.ok(Math.abs(top.mean - mean) < 1e-4);
    const fTop = results.focus.topHeads![0];
    const caption = written.captions.find((c) => c.name === "focus-head-dla")!.caption;
    assert.ok(caption.includes(`${fTop.label}, ${fTop.mean.toFixed(2)} ± ${fTop.se.toFixed(2)}`), caption);
    // Top heads are ranked by |mean| over the whole grid.
    const all = results.focus.headDla!.mean.flat().map(Math.abs);
    assert.equal(Math.abs(fTop.mean), Math.max(...all));
  });

  it("exact patching numbers match a direct patching run, normalised by the group's gap", () => {
    const pairs = validatePairs(generatePrompts(selectGroups(["'re/they"]), 6, 3), model.tokenizer).kept;
    const pt = {
      clean: pairs.map((p) => p.cleanTokens),
      corrupted: pairs.map((p) => p.corruptedTokens),
      answer: pairs.map((p) => p.answerToken),
      wrong: pairs.map((p) => p.wrongToken),
    };
    const gap = results.focus.contractionEffect.mean;
    const [d] = exactPatching(model, pt, [{ label: "", hook: "hook_mlp_out", layer: 1 }], 6);
    const want = d.reduce((a, b) => a + b, 0) / d.length / gap;
    assert.ok(Math.abs(results.focus.layerPatching!.mean[2][1] - want) < 1e-4);
    // Patching the whole residual stream at layer 0 restores the clean run exactly.
    assert.ok(Math.abs(results.focus.layerPatching!.mean[0][0] - 1) < 1e-4);
  });

  it("comparisons are Holm-adjusted over the family and consistent with their intervals", () => {
    const items = results.comparisons.items;
    assert.ok(items.length > 0);
    for (const c of items) {
      assert.ok(c.pHolm >= c.p);
      assert.equal(c.significant, c.pHolm < results.comparisons.alpha);
      assert.ok(c.ciLow <= c.diff + 1e-9 && c.diff - 1e-9 <= c.ciHigh);
      const g = results.groups.find((x) => x.name === c.group)!;
      const f = results.groups.find((x) => x.name === c.against)!;
      if (c.metric === "clean logit diff") {
        assert.ok(Math.abs(c.diff - (g.cleanLogitDiff.mean - f.cleanLogitDiff.mean)) < 1e-9);
      }
    }
  });
});
