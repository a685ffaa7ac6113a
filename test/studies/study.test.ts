/**
 * The whole study on the tiny fixture, in a test-size plan: the files are written atomically, and the
 * report's numbers match the analyses they come from, recomputed here directly.
 */
import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { logitDiff } from "../../src/analysis/answer-metrics.ts";
import { attributeLogitDiff } from "../../src/analysis/attribute.ts";
import { holmAdjust, summarize } from "../../src/analysis/stats.ts";
import { activationPatching } from "../../src/patching/activation-patching.ts";
import type { ContractionGroup } from "../../src/studies/contractions/groups.ts";
import { contractionsSpec } from "../../src/studies/contractions/spec.ts";
import { generatePrompts } from "../../src/studies/contractions/templates.ts";
import { runStudy } from "../../src/studies/pipeline.ts";
import { validatePairs } from "../../src/studies/prompts.ts";
import type { StudyResults } from "../../src/studies/results.ts";
import { planFor, type StudyPlan, selectGroups as select } from "../../src/studies/spec.ts";
import { writeStudy } from "../../src/studies/write-study.ts";
import { loadFixtureModel } from "../helpers/reference.ts";

const model = loadFixtureModel({ backend: "reference" });
const selectGroups = (names: string[]) => select(contractionsSpec, names) as ContractionGroup[];
const plan: StudyPlan = {
  ...planFor(contractionsSpec, { quick: true, seed: 3, groups: ["'re/they", "'s/he", "'m/you"] }),
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
    results = await runStudy({
      model,
      modelName: "tiny-gpt2",
      backend: "reference",
      spec: contractionsSpec,
      plan,
      quiet: true,
    });
    written = await writeStudy(results, join(dir, "out"));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it("writes report.html, results.json and one SVG per figure, and no temp directory", async () => {
    const out = join(dir, "out");
    assert.ok(existsSync(join(out, "report.html")));
    const json = JSON.parse(readFileSync(join(out, "results.json"), "utf8"));
    assert.equal(json.meta.seed, 3);
    const files = readdirSync(join(out, "figures"));
    const svgs = files.filter((f) => f.endsWith(".svg"));
    assert.equal(svgs.length, written.captions.length);
    // The spec's main figure is also a PNG (for a README), and nothing else is.
    assert.deepEqual(
      files.filter((f) => !f.endsWith(".svg")),
      [`${contractionsSpec.mainFigure}.png`],
    );
    for (const f of svgs) assert.match(readFileSync(join(out, "figures", f), "utf8"), /^<svg/);
    assert.deepEqual(
      readdirSync(dir).filter((n) => n.includes("tmp")),
      [],
    );
    // The report is self-contained: no external scripts or stylesheets.
    const html = readFileSync(join(out, "report.html"), "utf8");
    assert.doesNotMatch(html, /<script[^>]+src=|<link[^>]+href=/);
    await assert.rejects(writeStudy(results, out), /holds an earlier report: add --overwrite/);
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

  it("logit differences and head attributions match the shared analyses run directly", () => {
    const pairs = validatePairs(generatePrompts(selectGroups(["'s/he"]), 5, 3), model.tokenizer).kept;
    const ans = pairs.map((p) => p.answerToken);
    const wr = pairs.map((p) => p.wrongToken);
    const cleanTokens = pairs.map((p) => p.cleanTokens);
    // One prompt at a time, so batching in the study cannot hide a per-prompt mix-up.
    const alone = cleanTokens.map((t, i) => attributeLogitDiff(model, [t], ans[i], wr[i]));
    const clean = alone.map((r) => r.logitDiff.perPrompt[0]);
    const g = results.groups.find((x) => x.name === "'s/he")!;
    for (const [i, v] of clean.entries()) assert.ok(Math.abs(g.cleanLogitDiff.perPrompt[i] - v) < 1e-4);
    const s = summarize(clean, { resamples: 10 });
    assert.ok(Math.abs(g.cleanLogitDiff.mean - s.mean) < 1e-4);
    assert.ok(Math.abs(g.cleanLogitDiff.se - s.se) < 1e-4);
    const corruptedTokens = pairs.map((p) => p.corruptedTokens);
    const corrupted = logitDiff(
      model.run(corruptedTokens, { logits: "last" }),
      corruptedTokens.map((t) => t.length),
      ans,
      wr,
    ).perPrompt;
    for (const [i, v] of corrupted.entries())
      assert.ok(Math.abs(g.corruptedLogitDiff.perPrompt[i] - v) < 1e-4);
    // The top head's value equals the mean clean - corrupted DLA of that head from src/analysis.
    const H = model.cfg.nHeads;
    const top = g.topHeads![0];
    const aloneCorrupted = corruptedTokens.map((t, i) => attributeLogitDiff(model, [t], ans[i], wr[i]));
    const dla = (r: (typeof alone)[number]) => r.heads.values[top.row * H + top.col];
    const mean = alone.reduce((a, r, i) => a + dla(r) - dla(aloneCorrupted[i]), 0) / alone.length;
    assert.ok(Math.abs(top.mean - mean) < 1e-4);
    const cleanMean = alone.reduce((a, r) => a + dla(r), 0) / alone.length;
    assert.ok(Math.abs(g.headDla!.mean[top.row][top.col] - cleanMean) < 1e-4);
    // The residual-stream series is src/analysis's accumulated_resid, averaged: its final value plus the
    // unembedding-bias offset is the logit difference itself.
    const finals = alone.map((r) => r.accumulated.values.at(-1)!);
    assert.ok(
      Math.abs(g.accumulated!.mean.at(-1)! - finals.reduce((a, x) => a + x, 0) / finals.length) < 1e-4,
    );
    for (const [i, r] of alone.entries()) assert.ok(Math.abs(finals[i] + r.offsets[0] - clean[i]) < 1e-3);
    const fTop = results.focus.topHeads![0];
    const caption = written.captions.find((c) => c.name === "focus-head-dla")!.caption;
    assert.ok(caption.includes(`${fTop.label} ${fTop.mean.toFixed(2)} ± ${fTop.se.toFixed(2)}`), caption);
    // Top heads are ranked by |clean - corrupted| over the whole grid.
    const all = results.focus.headDlaDiff!.mean.flat().map(Math.abs);
    assert.equal(Math.abs(fTop.mean), Math.max(...all));
  });

  it("exact patching numbers match src/patching run directly, normalised by the group's gap when it has one", async () => {
    const pairs = validatePairs(generatePrompts(selectGroups(["'re/they"]), 6, 3), model.tokenizer).kept;
    const base = {
      clean: pairs.map((p) => p.cleanTokens),
      corrupted: pairs.map((p) => p.corruptedTokens),
      answers: { answer: pairs.map((p) => p.answerToken), wrong: pairs.map((p) => p.wrongToken) },
    };
    // Fractions of the gap only when the gap is clearly there; raw changes otherwise (no effect to restore).
    const gap = results.focus.normalised ? results.focus.effect.mean : 1;
    // The straightforward (one full forward per patch) path: independent of the fast path the study uses.
    const mlp = await activationPatching(model, {
      ...base,
      target: { kind: "custom", hook: "blocks.1.hook_mlp_out", indexSets: [[[null, null]]] },
      method: "straightforward",
    });
    assert.ok(Math.abs(results.focus.layerPatching!.mean[2][1] - (mlp.raw[0] - mlp.corrupted) / gap) < 1e-4);
    // Patching the whole residual stream at layer 0 restores the clean run exactly.
    assert.ok(Math.abs(results.focus.layerPatching!.mean[0][0] - results.focus.effect.mean / gap) < 1e-4);
    // A confirmed neuron: its per-prompt exact effect, from a direct patch of that neuron alone.
    const n = results.focus.neurons!.top[0];
    const one = await activationPatching(model, {
      ...base,
      target: {
        kind: "custom",
        hook: `blocks.${n.layer}.mlp.hook_post`,
        indexSets: [[[null, n.neuron]]],
      },
      method: "straightforward",
    });
    n.exact.perPrompt.forEach((v, b) => {
      const want = (one.perPrompt.raw[b] - one.perPrompt.corrupted[b]) / gap;
      assert.ok(Math.abs(v - want) < 1e-4, `${n.label} prompt ${b}: ${v} vs ${want}`);
    });
  });

  it("neuron pages hold the top confirmed neurons, with activations on the example prompts", () => {
    const pages = results.focus.neuronPages!;
    assert.equal(pages.length, Math.min(plan.neuronPages, results.focus.neurons!.top.length));
    const byExact = [...results.focus.neurons!.top].sort(
      (a, b) => Math.abs(b.exact.mean) - Math.abs(a.exact.mean),
    );
    assert.deepEqual(
      pages.map((p) => p.label),
      byExact.slice(0, pages.length).map((n) => n.label),
    );
    const p = pages[0];
    // The activation of mlp.hook_post recomputed from a cache, for the first example prompt.
    const ex = results.focus.attention![0];
    const tokens = model.toTokens(ex.prompt);
    const { cache } = model.runWithCache([tokens], { namesFilter: [`blocks.${p.page.layer}.mlp.hook_post`] });
    const post = cache.get("post", p.page.layer);
    p.prompts[0].activations.forEach((v, i) => {
      assert.ok(Math.abs(v - post.data[i * model.cfg.dMlp + p.page.neuron]) < 1e-4);
    });
    assert.ok(p.page.logitEffect.top[0].value >= p.page.logitEffect.bottom[0].value);
    assert.ok(written.captions.some((c) => c.name.startsWith(`neuron-${p.label}`)));
  });

  it("comparisons are Holm-adjusted over the family and consistent with their intervals", () => {
    const items = results.comparisons.items;
    assert.ok(items.length > 1);
    // Holm over the whole family, recomputed here from the unadjusted p-values.
    const holm = holmAdjust(items.map((c) => c.p));
    assert.deepEqual(
      items.map((c) => c.pHolm),
      holm,
    );
    // The adjustment changes something, so skipping it could not pass.
    assert.ok(items.some((c, i) => holm[i] > c.p));
    for (const c of items) {
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
