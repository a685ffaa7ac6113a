/**
 * The shared study pipeline on the tiny fixture: the gap rule (a group with no effect to restore is not
 * normalised and is marked), the behaviour gate, one unit per comparisons figure, `study custom`, and
 * position / head-part numbers recomputed with the straightforward patching path.
 */
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { activationPatching } from "../../src/patching/activation-patching.ts";
import { contractionsSpec } from "../../src/studies/contractions/spec.ts";
import { runStudy } from "../../src/studies/pipeline.ts";
import { buildSections } from "../../src/studies/report.ts";
import type { StudyResults } from "../../src/studies/results.ts";
import { planFor, type StudyPlan } from "../../src/studies/spec.ts";
import { MIN_GAP } from "../../src/studies/stages/behaviour.ts";
import { runCli } from "../helpers/cli.ts";
import { FIXTURE_DIR } from "../helpers/fixture.ts";
import { loadFixtureModel } from "../helpers/reference.ts";

const model = loadFixtureModel({ backend: "reference" });
const plan: StudyPlan = {
  ...planFor(contractionsSpec, { quick: true, seed: 0, groups: ["'re/they", "'s/he", "'s/they", "'re/he"] }),
  exactNeurons: 3,
  exactHeads: 2,
  resamples: 300,
};
const run = (spec = contractionsSpec) =>
  runStudy({ model, modelName: "tiny-gpt2", backend: "reference", spec, plan, quiet: true });

let res: StudyResults;

describe("study pipeline on the fixture", () => {
  before(async () => {
    res = await run();
  });

  it("normalises only groups whose gap is clearly there; the others report raw changes and are marked", () => {
    const flat = res.groups.filter((g) => !g.normalised);
    const normal = res.groups.filter((g) => g.normalised);
    // On the random fixture (seed 0) 's/he has a clear gap, 's/they about none, and 're/he a mean above the
    // threshold whose interval includes 0: only 's/he is normalised.
    const reHe = res.groups.find((g) => g.name === "'re/he")!;
    assert.ok(Math.abs(reHe.effect.mean) >= MIN_GAP && reHe.effect.ciLow < 0 && reHe.effect.ciHigh > 0);
    assert.deepEqual(
      normal.map((g) => g.name),
      ["'s/he"],
    );
    for (const g of flat) {
      assert.ok(!(g.effect.ciLow > 0 || g.effect.ciHigh < 0) || Math.abs(g.effect.mean) < MIN_GAP);
      for (const c of g.layerExact!) assert.equal(c.exactFraction, c.exact.mean, `${g.name} ${c.label} raw`);
    }
    for (const g of normal) {
      for (const c of g.layerExact!)
        assert.ok(Math.abs(c.exactFraction - c.exact.mean / g.effect.mean) < 1e-12);
    }
    const sections = buildSections(res);
    const figs = sections.flatMap((s) => s.figures);
    const top = figs.find((f) => f.name === "groups-top-layers")!;
    const rows = (top.figure as { data: { rowLabels: string[] } }).data.rowLabels;
    assert.deepEqual(
      rows,
      normal.map((g) => g.name),
    );
    const behaviour = figs.find((f) => f.name === "behaviour-logit-diff")!;
    for (const g of flat) assert.match(behaviour.caption, new RegExp(`No effect to restore.*${g.name}`));
    assert.match(res.meta.normalisationRule, /not normalised/);
    assert.match(sections[0].text!, /Normalisation: .*fraction restored/);
  });

  it("records each stage's peak memory: the process's, never falling, stated in the Setup section", () => {
    const seconds = Object.keys(res.meta.stageSeconds!);
    const peaks = res.meta.stagePeakRss!;
    assert.deepEqual(Object.keys(peaks), seconds);
    const values = Object.values(peaks);
    // Peak RSS can only rise; the model alone is more than 1 MB; the process's peak now bounds them all.
    for (let i = 1; i < values.length; i++)
      assert.ok(values[i] >= values[i - 1], `${seconds[i]} below earlier`);
    assert.ok(values[0] > process.memoryUsage().heapUsed / 4 && values[0] > 2 ** 20);
    assert.ok(values.at(-1)! <= process.resourceUsage().maxRSS * 1024);
    const gib = (values.at(-1)! / 2 ** 30).toFixed(2);
    assert.match(
      buildSections(res)[0].text!,
      new RegExp(`Peak memory of the process .*${seconds.at(-1)} ${gib} GiB`),
    );
  });

  it("draws the behaviour as points with interval bars, not lines", () => {
    const f = buildSections(res)
      .flatMap((s) => s.figures)
      .find((x) => x.name === "behaviour-logit-diff")!;
    const spec = JSON.stringify((f.figure as { spec: unknown }).spec);
    assert.match(spec, /"type":"point"/);
    assert.doesNotMatch(spec, /"line"/);
  });

  it("draws one comparisons figure per metric (one unit per axis), with the Holm-significant ones marked", () => {
    const figs = buildSections(res)
      .flatMap((s) => s.figures)
      .filter((f) => f.name.startsWith("groups-comparisons-"));
    const metrics = [...new Set(res.comparisons.items.map((c) => c.metric))];
    assert.equal(figs.length, metrics.length);
    for (const [i, metric] of metrics.entries()) {
      const f = figs[i];
      assert.ok(f.figure.title.startsWith(`${metric}:`), f.figure.title);
      const items = res.comparisons.items.filter((c) => c.metric === metric);
      const data = (f.figure as { data: { labels: string[]; values: number[] } }).data;
      assert.deepEqual(
        data.labels,
        items.map((c) => `${c.significant ? "✱ " : ""}${c.group}`),
      );
      assert.deepEqual(
        data.values,
        items.map((c) => c.diff),
      );
      assert.doesNotMatch(f.caption, /\.\.\.|…/);
    }
    // Fractions of the gap are compared only between groups that have one.
    for (const c of res.comparisons.items.filter((x) => x.metric.includes("fraction"))) {
      assert.ok(res.groups.find((g) => g.name === c.group)!.normalised);
    }
  });

  it("does not analyse a group whose clean behaviour interval is not above 0, when the spec asks", async () => {
    const gated = await run({ ...contractionsSpec, requireBehaviour: true });
    for (const g of gated.groups) {
      assert.equal(g.analysed, g.cleanLogitDiff.ciLow > 0, g.name);
      assert.equal(g.headDla !== undefined, g.analysed, g.name);
    }
    assert.ok(gated.groups.some((g) => !g.analysed));
    const text = buildSections(gated).find((s) => s.heading === "Behaviour")!.text!;
    assert.match(text, /does not do this/);
    for (const c of gated.comparisons.items)
      assert.ok(gated.groups.find((g) => g.name === c.group)!.analysed);
  });

  it("per-position and head-part numbers equal the straightforward patching path", async () => {
    const f = res.focus;
    const fg = res.groups.find((g) => g.name === res.focusGroup)!;
    const div = fg.normalised ? fg.effect.mean : 1;
    const pairs = res.prompts.pairs.filter((p) => p.group === res.focusGroup);
    const base = {
      clean: pairs.map((p) => model.toTokens(p.clean)),
      corrupted: pairs.map((p) => model.toTokens(p.corrupted)),
      answers: {
        answer: pairs.map((p) => model.toSingleToken(p.answer)),
        wrong: pairs.map((p) => model.toSingleToken(p.wrong)),
      },
    };
    // resid_pre of layer 1 at the cue position, on the position prompts.
    const n = f.positionPatching![0].grid.n;
    const cue = f.positions!.cue[0];
    const one = await activationPatching(model, {
      clean: base.clean.slice(0, n),
      corrupted: base.corrupted.slice(0, n),
      answers: { answer: base.answers.answer.slice(0, n), wrong: base.answers.wrong.slice(0, n) },
      target: { kind: "custom", hook: "blocks.1.hook_resid_pre", indexSets: [[[cue, null]]] },
      method: "straightforward",
    });
    const grid = f.positionPatching!.find((p) => p.component === "resid_pre")!.grid;
    grid.perPrompt.forEach((cells, b) => {
      const want = (one.perPrompt.raw[b] - one.perPrompt.corrupted[b]) / div;
      assert.ok(Math.abs(cells[1][cue] - want) < 1e-4, `prompt ${b}: ${cells[1][cue]} vs ${want}`);
    });
    // The first chosen head's value, all positions.
    const [, l, h] = /L(\d+)H(\d+)/.exec(f.headSplit!.heads[0])!.map(Number);
    const v = await activationPatching(model, {
      ...base,
      target: { kind: "custom", hook: `blocks.${l}.attn.hook_v`, indexSets: [[[null, h, null]]] },
      method: "straightforward",
    });
    const vi = f.headSplit!.parts.indexOf("value");
    f.headSplit!.exact.perPrompt.forEach((cells, b) => {
      const want = (v.perPrompt.raw[b] - v.perPrompt.corrupted[b]) / div;
      assert.ok(Math.abs(cells[0][vi] - want) < 1e-4, `value prompt ${b}: ${cells[0][vi]} vs ${want}`);
    });
  });

  it("keeps every finding's evidence in results", () => {
    // Behaviour first: the range of the clean logit difference, then of the effect, with the groups named.
    const [clean, effect] = res.findings!;
    const lo = [...res.groups].sort((a, b) => a.cleanLogitDiff.mean - b.cleanLogitDiff.mean)[0];
    assert.match(clean.text, new RegExp(`from ${lo.name} ${lo.cleanLogitDiff.mean.toFixed(2)}`));
    for (const g of res.groups.filter((x) => !x.normalised))
      assert.ok(effect.text.includes(g.name), effect.text);
    for (const f of res.findings!) assert.ok(Object.keys(f.evidence).length > 0, f.text);
  });
});

describe("study custom --prompts", () => {
  let dir: string;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), "cs-custom-"));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  /** Writes NAME.jsonl, runs `study custom --quick --json` on it into NAME-out, and reads results.json. */
  async function runCustom(name: string, lines: string[]) {
    const file = join(dir, `${name}.jsonl`);
    writeFileSync(file, `${lines.join("\n")}\n`);
    const out = join(dir, `${name}-out`);
    const r = await runCli([
      "study",
      "custom",
      "--prompts",
      file,
      "--model",
      FIXTURE_DIR,
      "--out",
      out,
      "--quick",
      "--json",
    ]);
    assert.equal(r.code, 0, r.stderr);
    return { file, out, r, json: JSON.parse(readFileSync(join(out, "results.json"), "utf8")) };
  }

  it("runs the pipeline on the file's pairs with the file's groups, the first as focus", async () => {
    const pairs = [
      [
        "We're helping our friend while they",
        "We are helping our friend while they",
        "'re",
        " are",
        "mine/a",
      ],
      [
        "They're calling the team because they",
        "They are calling the team because they",
        "'re",
        " are",
        "mine/a",
      ],
      ["You're meeting my boss and they", "You are meeting my boss and they", "'re", " are", "mine/a"],
      ["He's driving the kids so he", "He is driving the kids so he", "'s", " is", "mine/b"],
      ["She's feeding the children when he", "She is feeding the children when he", "'s", " is", "mine/b"],
      ["He's thanking our guests but he", "He is thanking our guests but he", "'s", " is", "mine/b"],
    ].map(([clean, corrupted, answer, wrong, group]) =>
      JSON.stringify({ clean, corrupted, answer, wrong, group }),
    );
    const { file, out, json } = await runCustom("pairs", pairs);
    assert.equal(json.study.id, "custom");
    assert.equal(json.focusGroup, "mine/a");
    assert.deepEqual(
      json.groups.map((g: { name: string; n: number }) => [g.name, g.n]),
      [
        ["mine/a", 3],
        ["mine/b", 3],
      ],
    );
    const again = await runCli(["study", "custom", "--prompts", file, "--model", FIXTURE_DIR, "--out", out]);
    assert.notEqual(again.code, 0);
    assert.match(again.stderr, /circuitscope: error: .*holds an earlier report: add --overwrite/);
    const badFocus = await runCli([
      "study",
      "custom",
      "--prompts",
      file,
      "--focus",
      "nope",
      "--model",
      FIXTURE_DIR,
      "--out",
      join(dir, "o2"),
    ]);
    assert.match(badFocus.stderr, /--focus "nope" is not a group.*mine\/a, mine\/b/);
  });

  it("pairs and groups dropped from the file are announced on stderr, not only recorded in results.json", async () => {
    const pair = (clean: string, corrupted: string, answer: string, wrong: string, group: string) =>
      JSON.stringify({ clean, corrupted, answer, wrong, group });
    const lines = [
      pair("We're helping our friend while they", "We are helping our friend while they", "'re", " are", "a"),
      pair(
        "They're calling the team because they",
        "They are calling the team because they",
        "'re",
        " are",
        "a",
      ),
      pair("We're helping our friend while they", "We are helping our friend while they", "'re", " are", "a"),
      pair("You're meeting my boss and they", "You are meeting my boss and they", "'re", " are", "a"),
      pair("He's driving so he", "He is driving the kids so he", "'s", " is", "same/b"),
      pair("She's here so he", "She is here so he", "'s", "'s", "same/b"),
    ];
    const { r, json } = await runCustom("dropping", lines);
    const dropped = json.prompts.dropped as { group: string; reason: string }[];
    assert.equal(dropped.length, 3, JSON.stringify(dropped));
    // The announcement agrees with results.json: the total, each reason's count, and the emptied group.
    assert.match(
      r.stderr,
      new RegExp(`Dropped ${dropped.length} of ${lines.length} prompt pairs from file .*dropping\\.jsonl`),
    );
    for (const reason of new Set(dropped.map((d) => d.reason))) {
      const n = dropped.filter((d) => d.reason === reason).length;
      assert.ok(r.stderr.includes(`  ${n} × ${reason}`), `${n} × ${reason} in: ${r.stderr}`);
    }
    assert.match(r.stderr, /Group "same\/b" kept no pair and is not studied/);
    assert.deepEqual(
      json.groups.map((g: { name: string }) => g.name),
      ["a"],
    );
  });
});
