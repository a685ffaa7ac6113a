/**
 * The pronoun study end to end on the bundled stories260k: the prompts differ only in the gender cue, the
 * behaviour matches the float64 values, the gate drops a group the model does not do, and the
 * study's numbers equal src/analysis and the straightforward patching path run directly.
 */
import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, posix } from "node:path";
import { after, before, describe, it } from "node:test";
import { logitDiff } from "../../src/analysis/answer-metrics.ts";
import { attributeLogitDiff } from "../../src/analysis/attribute.ts";
import { attributeGraph } from "../../src/graphs/attribute-graph.ts";
import { nodeRanges } from "../../src/graphs/attribution-graph.ts";
import { featureLogitEffects } from "../../src/graphs/graph-check.ts";
import { graphScores } from "../../src/graphs/prune.ts";
import { loadTranscoderSet } from "../../src/graphs/transcoder-set.ts";
import { HookedTransformer } from "../../src/model/hooked-transformer.ts";
import { activationPatching } from "../../src/patching/activation-patching.ts";
import { attributionPatching } from "../../src/patching/attribution-patching.ts";
import { loadSaeLensDir } from "../../src/sae/saelens-dir.ts";
import { runStudy } from "../../src/studies/pipeline.ts";
import { sharedUnits } from "../../src/studies/prompts.ts";
import { findingParagraph } from "../../src/studies/pronouns/finding-paragraph.ts";
import { pronounsSpec } from "../../src/studies/pronouns/spec.ts";
import { buildSections } from "../../src/studies/report.ts";
import type { StudyResults } from "../../src/studies/results.ts";
import { planFor, type StudyPlan } from "../../src/studies/spec.ts";
import { runCli } from "../helpers/cli.ts";

const model = await HookedTransformer.fromPretrained("stories260k", { backend: "reference" });
const plan: StudyPlan = {
  ...planFor(pronounsSpec, {
    quick: true,
    seed: 1,
    groups: ["noun-near-she", "noun-near-he", "noun-near-his", "name-near-she"],
  }),
  perGroup: 8,
  focusPrompts: 10,
  positionPrompts: 6,
  exactNeurons: 4,
  exactHeads: 3,
  resamples: 300,
};
let res: StudyResults;

const pairsOf = (group: string) => res.prompts.pairs.filter((p) => p.group === group);
const tokensOf = (group: string) => {
  const pairs = pairsOf(group);
  return {
    clean: pairs.map((p) => model.toTokens(p.clean)),
    corrupted: pairs.map((p) => model.toTokens(p.corrupted)),
    answers: {
      answer: pairs.map((p) => model.toSingleToken(p.answer)),
      wrong: pairs.map((p) => model.toSingleToken(p.wrong)),
    },
  };
};

describe("pronoun study on stories260k", () => {
  before(async () => {
    res = await runStudy({
      model,
      modelName: "stories260k",
      backend: "reference",
      spec: pronounsSpec,
      plan,
      quiet: true,
    });
  });

  it("has the behaviour the issue measured in float64", () => {
    const cases: [string, number][] = [
      ["There was a girl. One day,", 5.8],
      ["There was a boy. One day,", -2.9],
      ["Once upon a time, there was a little girl named Lily. She was very happy. One day,", 6.4],
      ["Once upon a time, there was a little boy named Tim. He was very happy. One day,", -5.8],
    ];
    for (const [prompt, want] of cases) {
      const t = model.toTokens(prompt);
      const got = logitDiff(
        model.run([t], { logits: "last" }),
        [t.length],
        [model.toSingleToken(" she")],
        [model.toSingleToken(" he")],
      ).perPrompt[0];
      // The issue gives one decimal.
      assert.ok(Math.abs(got - want) <= 0.051, `${prompt}: ${got} vs ${want}`);
    }
  });

  it("pairs differ only in the gender cue, with equal token counts and single-token answers", () => {
    assert.equal(res.prompts.dropped.length, 0, JSON.stringify(res.prompts.dropped));
    for (const p of res.prompts.pairs) {
      const c = model.toStrTokens(p.clean);
      const k = model.toStrTokens(p.corrupted);
      assert.equal(c.length, k.length, p.clean);
      const diff = c.flatMap((t, i) => (t !== k[i] ? [t.trim()] : [])).join("");
      const other = k.flatMap((t, i) => (t !== c[i] ? [t.trim()] : [])).join("");
      const cue = p.group.startsWith("name") ? ["Lily", "Tim"] : ["boy", "girl"];
      assert.deepEqual([diff, other].sort(), cue, `${p.clean} / ${p.corrupted}`);
      model.toSingleToken(p.answer);
      model.toSingleToken(p.wrong);
    }
  });

  it("analyses a group only when its clean behaviour interval is above 0", () => {
    for (const g of res.groups) {
      assert.equal(g.analysed, g.cleanLogitDiff.ciLow > 0, g.name);
      assert.equal(g.headDla !== undefined, g.analysed, g.name);
    }
    assert.ok(res.groups.find((g) => g.name === "noun-near-she")!.analysed);
  });

  it("logit differences and head DLA equal src/analysis run one prompt at a time", () => {
    for (const name of ["noun-near-she", "noun-near-he"]) {
      const g = res.groups.find((x) => x.name === name)!;
      const t = tokensOf(name);
      t.clean.forEach((tokens, i) => {
        const r = attributeLogitDiff(model, [tokens], t.answers.answer[i], t.answers.wrong[i]);
        assert.ok(Math.abs(g.cleanLogitDiff.perPrompt[i] - r.logitDiff.perPrompt[0]) < 1e-4);
        const H = model.cfg.nHeads;
        for (const [l, row] of g.headDla!.perPrompt[i].entries()) {
          for (const [h, v] of row.entries()) assert.ok(Math.abs(v - r.heads.values[l * H + h]) < 1e-4);
        }
      });
      const corrupted = logitDiff(
        model.run(t.corrupted, { logits: "last" }),
        t.corrupted.map((x) => x.length),
        t.answers.answer,
        t.answers.wrong,
      ).perPrompt;
      for (const [i, v] of corrupted.entries())
        assert.ok(Math.abs(g.corruptedLogitDiff.perPrompt[i] - v) < 1e-4);
    }
  });

  it("patching numbers equal the straightforward path: layer, position, a head's value (its key/value group)", async () => {
    const f = res.focus;
    const gap = f.effect.mean;
    assert.ok(f.normalised);
    const t = tokensOf(res.focusGroup);
    const straight = async (hook: string, selector: (number | null)[], n = t.clean.length) => {
      const r = await activationPatching(model, {
        clean: t.clean.slice(0, n),
        corrupted: t.corrupted.slice(0, n),
        answers: { answer: t.answers.answer.slice(0, n), wrong: t.answers.wrong.slice(0, n) },
        target: { kind: "custom", hook, indexSets: [[selector]] },
        method: "straightforward",
      });
      return r.perPrompt.raw.map((v, b) => (v - r.perPrompt.corrupted[b]) / gap);
    };
    const L = model.cfg.nLayers;
    const attn = await straight(`blocks.${L - 1}.hook_attn_out`, [null, null]);
    for (const [b, cells] of f.layerPatching!.perPrompt.entries())
      assert.ok(Math.abs(cells[1][L - 1] - attn[b]) < 1e-4);
    // The final position's attention output in the last layer, one position only.
    const grid = f.positionPatching!.find((p) => p.component === "attn_out")!.grid;
    const final = f.positions!.final;
    const one = await straight(`blocks.${L - 1}.hook_attn_out`, [final, null], grid.n);
    for (const [b, cells] of grid.perPrompt.entries())
      assert.ok(Math.abs(cells[L - 1][final] - one[b]) < 1e-4);
    // A head's value: with grouped-query attention that is its key/value head's, h * nKvHeads / nHeads.
    const hs = f.headSplit!;
    const [, l, h] = /L(\d+)H(\d+)/.exec(hs.heads[0])!.map(Number);
    const kv = Math.floor((h * model.cfg.nKvHeads) / model.cfg.nHeads);
    const v = await straight(`blocks.${l}.attn.hook_v`, [null, kv, null]);
    const vi = hs.parts.indexOf("value");
    for (const [b, cells] of hs.exact.perPrompt.entries()) assert.ok(Math.abs(cells[0][vi] - v[b]) < 1e-4);
  });

  it("head DLA is ranked by clean − corrupted, each run equal to src/analysis on its own prompts", () => {
    const g = res.focus;
    const t = tokensOf(res.focusGroup);
    const H = model.cfg.nHeads;
    const diff: number[][] = [];
    t.corrupted.forEach((tokens, i) => {
      const r = attributeLogitDiff(model, [tokens], t.answers.answer[i], t.answers.wrong[i]);
      for (const [l, row] of g.headDlaCorrupted!.perPrompt[i].entries())
        for (const [h, v] of row.entries()) assert.ok(Math.abs(v - r.heads.values[l * H + h]) < 1e-4);
      diff.push(
        g.headDla!.perPrompt[i].flatMap((row, l) => row.map((v, h) => v - r.heads.values[l * H + h])),
      );
    });
    const meanDiff = diff[0].map((_, k) => diff.reduce((a, d) => a + d[k], 0) / diff.length);
    const best = meanDiff.reduce((b, v, k) => (Math.abs(v) > Math.abs(meanDiff[b]) ? k : b), 0);
    assert.equal(g.topHeads![0].label, `L${Math.floor(best / H)}H${best % H}`);
    assert.ok(Math.abs(g.topHeads![0].mean - meanDiff[best]) < 1e-4);
  });

  it("measures the mechanism on every mechanism group it runs, and states it only for those", () => {
    const mech = res.groups.filter((g) => g.headSplit).map((g) => g.name);
    assert.deepEqual(mech.sort(), ["name-near-she", "noun-near-she"]);
    for (const name of mech) {
      const g = res.groups.find((x) => x.name === name)!;
      assert.ok(
        g.positionPatching && g.layerPatching && g.headSplit!.toCue.length === g.headSplit!.heads.length,
      );
    }
    // A finding about named groups is made only for groups that have the measurement it states.
    const names = res.groups.map((g) => g.name);
    for (const f of res.findings!.filter((x) => x.groups)) {
      for (const name of f.groups!) assert.ok(names.includes(name), `${f.text}: ${name} not run`);
      if (/resid_pre|head's output|patching [^ ]+'s output/.test(f.text))
        for (const name of f.groups!)
          assert.ok(res.groups.find((g) => g.name === name)!.headSplit, `${name} not measured: ${f.text}`);
      if (/SAE feature/.test(f.text))
        for (const name of f.groups!)
          assert.ok(res.groups.find((g) => g.name === name)!.features, `${name} has no features: ${f.text}`);
      for (const other of mentioned(f.text, names))
        assert.ok(f.groups!.includes(other), `"${f.text}" names ${other} but states it for ${f.groups}`);
    }
    // Features are measured on exactly the groups whose mechanism is, and each has its sentence.
    assert.deepEqual(
      res.groups
        .filter((g) => g.features)
        .map((g) => g.name)
        .sort(),
      mech.sort(),
    );
    for (const name of mech)
      assert.ok(
        res.findings!.some((f) => f.groups?.includes(name) && /SAE feature/.test(f.text)),
        name,
      );
  });

  it("SAE features: the ranking and every number equal the features target run directly", async () => {
    const sae = loadSaeLensDir(pronounsSpec.features!.sae, { kernels: model.kernels });
    for (const name of ["noun-near-she", "name-near-she"]) {
      const g = res.groups.find((x) => x.name === name)!;
      const t = tokensOf(name);
      const gap = g.effect.mean;
      const est = attributionPatching(model, { ...t, target: { kind: "features", sae } });
      const [P, F] = est.shape;
      const B = t.clean.length;
      // Per prompt, each feature's estimates summed over positions (raw logit differences), normalised.
      const summed = (f: number) =>
        Array.from({ length: B }, (_, b) => {
          let s = 0;
          for (let p = 0; p < P; p++)
            s += est.perPrompt.raw[b * P * F + p * F + f] - est.perPrompt.corrupted[b];
          return s / gap;
        });
      const mean = (xs: number[]) => xs.reduce((a, x) => a + x, 0) / xs.length;
      const means = Array.from({ length: F }, (_, f) => Math.abs(mean(summed(f))));
      const ranked = [...means.keys()].sort((a, b) => means[b] - means[a] || a - b);
      const top = g.features!.top;
      assert.deepEqual(
        top.map((x) => x.feature),
        ranked.slice(0, top.length),
      );
      for (const x of top) {
        const a = summed(x.feature);
        for (const [b, v] of x.attribution.perPrompt.entries()) assert.ok(Math.abs(v - a[b]) < 1e-4);
      }
      // Exact: the top feature at every position, one full spliced run per prompt (the straightforward path).
      const f0 = top[0];
      const exact = await activationPatching(model, {
        ...t,
        target: { kind: "features", sae, features: [f0.feature] },
        method: "straightforward",
      });
      for (const [b, v] of f0.exact.perPrompt.entries()) {
        const want = (exact.perPrompt.raw[b] - exact.perPrompt.corrupted[b]) / gap;
        assert.ok(Math.abs(v - want) < 1e-4, `${name} F${f0.feature} prompt ${b}: ${v} vs ${want}`);
      }
    }
    sae.dispose();
  });

  it("attribution graph: every number equals the library's graph run directly, and its sentence states them", async () => {
    const g = res.graph!;
    assert.ok(g, "the pronoun spec names transcoders, so the study has a graph");
    const first = pairsOf(res.focusGroup)[0];
    assert.equal(g.prompt, first.clean);
    const tokens = model.toTokens(first.clean);
    const she = model.toSingleToken(first.answer);
    const he = model.toSingleToken(first.wrong);
    const set = await loadTranscoderSet(pronounsSpec.graph!.transcoders);
    const { graph } = await attributeGraph(model, tokens, set, { targets: [she, he] });
    const scores = graphScores(graph);
    assert.equal(g.nFeatures, graph.features.length);
    assert.equal(g.replacementScore, scores.replacementScore);
    assert.equal(g.completenessScore, scores.completenessScore);
    // Effects on logit(she) − logit(he): activation × (τ_she − τ_he), ranked by |effect| here on their own.
    const tauShe = featureLogitEffects(graph, graph.logitTokens.indexOf(she)).total;
    const tauHe = featureLogitEffects(graph, graph.logitTokens.indexOf(he)).total;
    const effect = graph.features.map((f, i) => f.activation * (tauShe[i] - tauHe[i]));
    const id = (i: number) =>
      `${graph.features[i].layer}_${graph.features[i].feature}_${graph.features[i].pos}`;
    const ranked = [...effect.keys()].sort((i, j) => Math.abs(effect[j]) - Math.abs(effect[i]));
    assert.deepEqual(
      g.top.map((t) => t.nodeId),
      ranked.slice(0, g.top.length).map(id),
    );
    for (const t of g.top) assert.equal(t.effect, effect[ranked.find((i) => id(i) === t.nodeId)!]);
    // Paths: every (token, feature) edge × the feature's effect per unit, the strongest first.
    const { nNodes: n, tokenStart } = nodeRanges(graph);
    const paths: { key: string; w: number; cue: boolean }[] = [];
    const corrupted = model.toTokens(first.corrupted);
    for (let p = 0; p < tokens.length; p++)
      for (let i = 0; i < graph.features.length; i++) {
        const w = graph.adjacency[i * n + tokenStart + p] * (tauShe[i] - tauHe[i]);
        if (w !== 0) paths.push({ key: `${p}->${id(i)}`, w, cue: tokens[p] !== corrupted[p] });
      }
    paths.sort((a, b) => Math.abs(b.w) - Math.abs(a.w));
    assert.deepEqual(
      g.paths.map((p) => `${p.pos}->${p.feature.nodeId}`),
      paths.slice(0, g.paths.length).map((p) => p.key),
    );
    const cue = paths.filter((p) => p.cue);
    assert.ok(g.cuePaths.length > 0, "the cue has edges into features");
    assert.deepEqual(
      g.cuePaths.map((p) => `${p.pos}->${p.feature.nodeId}`),
      cue.slice(0, g.cuePaths.length).map((p) => p.key),
    );
    for (const p of g.cuePaths) {
      assert.equal(p.token, model.toString([tokens[p.pos]]));
      assert.notEqual(
        tokens[p.pos],
        corrupted[p.pos],
        "a cue position: the clean and corrupted tokens differ",
      );
    }
    for (const [k, p] of g.paths.entries())
      assert.ok(Math.abs(p.weight - paths[k].w) <= 1e-9 * (1 + Math.abs(paths[k].w)));
    // The sentence states exactly these numbers.
    const finding = res.findings!.find((f) => f.text.includes("attribution graph"))!;
    assert.ok(finding, "a finding for the graph");
    assert.ok(finding.text.includes(`replacement score ${g.replacementScore.toFixed(2)}`), finding.text);
    assert.ok(finding.text.includes(`completeness ${g.completenessScore.toFixed(2)}`), finding.text);
    for (const t of g.top)
      assert.ok(
        finding.text.includes(
          `${t.nodeId} at ${JSON.stringify(t.token)} (${t.effect >= 0 ? "+" : ""}${t.effect.toFixed(2)})`,
        ),
        t.nodeId,
      );
    for (const p of [...g.paths, ...g.cuePaths])
      assert.ok(
        finding.text.includes(
          `(position ${p.pos}) → ${p.feature.nodeId} (${p.weight >= 0 ? "+" : ""}${p.weight.toFixed(2)})`,
        ),
        p.feature.nodeId,
      );
    assert.equal(finding.evidence["graph.replacementScore"], g.replacementScore);
  });

  it("the README paragraph's statements name only groups each was measured on", () => {
    const statements = findingParagraph(res);
    const names = res.groups.map((g) => g.name);
    assert.ok(statements.length >= 4);
    for (const s of statements) {
      assert.ok(s.groups.length > 0, s.text);
      for (const other of mentioned(s.text, names))
        assert.ok(s.groups.includes(other), `"${s.text}" names ${other} but is made for ${s.groups}`);
      if (s.text.includes("head's output"))
        for (const name of s.groups) assert.ok(res.groups.find((g) => g.name === name)!.headSplit, name);
    }
    // The README's own paragraph: every "In G," mechanism statement is about a group the study measures it on.
    const readme = readFileSync(new URL("../../README.md", import.meta.url), "utf8");
    const para = readme.split("\n\n").find((p) => p.startsWith("**What circuitscope finds"))!;
    assert.ok(para, "README finding paragraph");
    const inGroup = [...para.matchAll(/In ([a-z]+-[a-z0-9]+-[A-Za-z]+), the final position/g)].map(
      (m) => m[1],
    );
    assert.ok(inGroup.length >= 3, para);
    for (const g of inGroup) assert.ok(pronounsSpec.mechanismGroups!.includes(g), g);
  });

  it("a mirror group shares its original's texts, swapped; its shared prompts are paired, its gap equal", () => {
    const he = res.groups.find((g) => g.name === "noun-near-he")!;
    assert.equal(he.mirrorOf?.group, "noun-near-she");
    const shared = sharedUnits(pairsOf("noun-near-he"), pairsOf("noun-near-she"));
    assert.equal(he.mirrorOf!.shared, shared.length);
    assert.equal(shared.length, he.n, "every he text is a she text with the roles swapped");
    // The gap (clean - corrupted) is swap-symmetric: equal prompt for prompt.
    for (const [i, j] of shared)
      assert.ok(Math.abs(he.effect.perPrompt[i] - res.focus.effect.perPrompt[j]) < 1e-4);
    // The focus group has more prompts than its mirror here, so the mirror is tested, paired over the shared ones.
    const c = res.comparisons.items.find(
      (x) => x.group === "noun-near-he" && x.metric.startsWith("gender effect"),
    )!;
    assert.equal(c.paired, shared.length);
  });

  it("the Setup states how many distinct texts each group's prompts are drawn from, and what the intervals measure", () => {
    const setup = buildSections(res).find((x) => x.heading === "Setup")!;
    const text = setup.text ?? "";
    for (const g of res.prompts.groups) {
      const spec = pronounsSpec.groups.find((x) => x.name === g.name)!;
      const distinct = new Set(pronounsSpec.generate([spec], () => 5000, 3).map((p) => p.clean)).size;
      assert.ok(text.includes(`${g.name}: ${g.kept} prompts of ${distinct} distinct texts`), g.name);
    }
    assert.match(text, /measures how much the numbers vary across these templates, not sampling error/);
  });

  it("states the hand-over with the numbers it rests on", () => {
    const text = res.findings!.map((x) => x.text).join("\n");
    const grid = res.focus.positionPatching!.find((p) => p.component === "attn_out")!.grid;
    const m = /L(\d+)'s attention output at the final position restores (-?\d+\.\d\d)/.exec(text);
    if (m) {
      const l = Number(m[1]);
      assert.equal(grid.mean[l][res.focus.positions!.final].toFixed(2), m[2]);
    }
    // Every finding comes with the numbers behind it.
    for (const x of res.findings!) assert.ok(Object.keys(x.evidence).length > 0);
  });
});

/** The group names a sentence mentions (whole names: "noun-near-he" is not found inside "noun-near-her"). */
function mentioned(text: string, names: readonly string[]): string[] {
  return names.filter((n) => new RegExp(`(^|[^\\w-])${n}(?![\\w-])`).test(text));
}

describe("circuitscope study pronouns", () => {
  let dir: string;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), "cs-pronouns-"));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it("runs offline on the bundled model by default (--quick) and writes the report", async () => {
    const out = join(dir, "out");
    const r = await runCli(["study", "pronouns", "--quick", "--out", out, "--json"]);
    assert.equal(r.code, 0, r.stderr);
    const json = JSON.parse(readFileSync(join(out, "results.json"), "utf8"));
    assert.equal(json.study.id, "pronouns");
    assert.equal(json.meta.model, "stories260k");
    assert.deepEqual(
      json.groups.map((g: { name: string }) => g.name),
      pronounsSpec.quickGroups,
    );
    assert.ok(existsSync(join(out, "report.html")));
    const html = readFileSync(join(out, "report.html"), "utf8");
    assert.match(html, /What the numbers say/);
    // The features section says what the SAE was trained on, and its feature pages are in the report.
    assert.match(html, /SAE features[\s\S]*sampled from stories260k itself/);
    assert.ok(json.featurePages.length > 0);
    for (const p of json.featurePages) {
      assert.ok(html.includes(p.file), p.file);
      const page = readFileSync(join(out, p.file), "utf8");
      assert.match(page, new RegExp(`SAE feature ${p.feature}`));
    }
    // The attribution graph's page is in the report and linked; its section states the caveats.
    assert.equal(json.graph.file, "graph/graph.html");
    assert.ok(html.includes(json.graph.file));
    assert.match(html, /Attribution graph[\s\S]*one prompt[\s\S]*sampled from stories260k itself/);
    assert.match(readFileSync(join(out, json.graph.file), "utf8"), /replacement/i);
    assert.equal(json.graphPage, undefined, "the front-end graph is its page, not a part of results.json");
    // The report's pages share one viz bundle file at its top instead of a copy each.
    const bundles = readdirSync(out).filter((f) => /^circuitscope-viz\.[0-9a-f]{16}\.js$/.test(f));
    assert.equal(bundles.length, 1, bundles.join(", "));
    const bundleBytes = statSync(join(out, bundles[0] as string)).size;
    const pages = ["report.html", json.graph.file, ...json.featurePages.map((p: { file: string }) => p.file)];
    for (const page of pages) {
      const bytes = statSync(join(out, page)).size;
      assert.ok(bytes < bundleBytes / 2, `${page}: ${bytes} bytes, under half the bundle's ${bundleBytes}`);
      const src = posix.relative(posix.dirname(page), bundles[0] as string);
      assert.ok(
        readFileSync(join(out, page), "utf8").includes(` src="${src}"></script>`),
        `${page} loads ${src}`,
      );
    }
  });
});
