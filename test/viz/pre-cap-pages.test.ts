/**
 * Neuron and feature pages say their logit effects are pre-cap when the model soft-caps its logits, and
 * graph pages say which of their numbers are (issue 31, the pages beside test/viz/pre-cap-note.test.ts).
 * A soft-capped Gemma 2 (final cap 3) gets preCapNote's sentence and "pre-cap" value axes on every page kind:
 * `neuron` (HTML, text), SAE and transcoder `feature` pages, the explorer's neuron and feature panels and its
 * feature search by token, `graph --html` and its feature pages, the explorer's graph job, a study report's
 * neuron figures and graph tables. An uncapped Gemma 2 (the same family without the cap) and GPT-2 get none.
 * The logit effects themselves are checked against a float64 product of the checkpoint's own tensors
 * (down_proj, 1 + norm.weight, embed_tokens): pre-cap, not bent by the cap.
 */
import assert from "node:assert/strict";
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { writeTranscoderSet } from "../../src/graphs/transcoder-set.ts";
import { HookedTransformer } from "../../src/model/hooked-transformer.ts";
import { featurePageData, transcoderFeaturePageData } from "../../src/neurons/feature-page.ts";
import { featureReport } from "../../src/neurons/feature-report.ts";
import { neuronPageData, type TokenEffect } from "../../src/neurons/neuron-page.ts";
import { neuronReport } from "../../src/neurons/neuron-report.ts";
import { formatFeaturePage, formatNeuronPage } from "../../src/neurons/neuron-text.ts";
import type { Sae } from "../../src/sae/sae.ts";
import { loadSaeLensDir, writeSaeLensDir } from "../../src/sae/saelens-dir.ts";
import {
  featureSearchTask,
  featureTask,
  graphTask,
  neuronTask,
  type TaskContext,
} from "../../src/server/tasks.ts";
import type { StudyResults } from "../../src/studies/results.ts";
import { neuronStage } from "../../src/studies/stages/components.ts";
import { graphStage } from "../../src/studies/stages/graph.ts";
import type { ReportOptions } from "../../src/viz/html/report.ts";
import { loadCheckpoint } from "../../src/weights/checkpoint.ts";
import { runCli } from "../helpers/cli.ts";
import { makeGemma2Checkpoint } from "../helpers/gemma2-variants.ts";
import { readHfTensors } from "../helpers/llama-reference.ts";
import { randomSaeWeights, saeConfigFor } from "../helpers/random-sae.ts";
import { randomTranscoderSet } from "../helpers/random-transcoder.ts";

const root = mkdtempSync(join(tmpdir(), "circuitscope-pre-cap-pages-"));
after(() => rmSync(root, { recursive: true, force: true }));

const CAP = 3; // Gemma 2 variant 0's final_logit_softcapping
const EFFECT_NOTE =
  /soft-caps its logits \(cap · tanh\(logit \/ cap\), cap 3\): these are direct effects on the pre-cap logits/;
const GRAPH_NOTE =
  /soft-caps its logits \(cap · tanh\(logit \/ cap\), cap 3\): edges into a logit node are direct effects on its demeaned pre-cap logit; the node's probability p is the model's, after the cap/;
const ANY_NOTE = /soft-caps its logits/;
const AXIS = "@ W_U (pre-cap logits)";

const capped = makeGemma2Checkpoint(root, 0);
const MODELS = [
  { name: "soft-capped Gemma 2", dir: capped.dir, cap: CAP },
  { name: "uncapped Gemma 2", dir: makeGemma2Checkpoint(root, 1).dir, cap: null },
  { name: "GPT-2", dir: "test/fixtures/tiny-gpt2", cap: null },
] as const;

const LAYER = 1;
const NEURON = 5;
const FEATURE = 3;
const SAE_HOOK = `blocks.${LAYER}.hook_resid_post`;
const D_SAE = 16;
const D_TC = 8;
const saeWeights = randomSaeWeights({ architecture: "standard", dIn: 64, dSae: D_SAE, seed: 5 });
const tcSet = randomTranscoderSet({
  layers: 3,
  dModel: 64,
  dTc: D_TC,
  seed: 7,
  jump: () => false,
  skip: () => false,
});
const saeDir = join(root, "sae");
const tcDir = join(root, "tc");

before(async () => {
  await writeSaeLensDir(saeDir, {
    cfg: saeConfigFor({ architecture: "standard", dIn: 64, dSae: D_SAE, hookName: SAE_HOOK }),
    weights: saeWeights,
  });
  await writeTranscoderSet(tcDir, tcSet);
});

/** The "Direct effect on the logits" section: its text, and each figure as JSON (axis titles included). */
function effectSection(report: Pick<ReportOptions, "sections">): { text: string; figures: string[] } {
  const s = report.sections.find((x) => x.heading === "Direct effect on the logits");
  assert.ok(s, "the page has a logit-effect section");
  return { text: s.text ?? "", figures: s.figures.map((f) => JSON.stringify(f.figure)) };
}

function assertNote(text: string, cap: number | null, what: string, note = EFFECT_NOTE): void {
  if (cap === null) assert.doesNotMatch(text, ANY_NOTE, what);
  else assert.match(text, note, what);
}

function assertSection(report: Pick<ReportOptions, "sections">, cap: number | null, what: string): void {
  const { text, figures } = effectSection(report);
  assertNote(text, cap, `${what}: section text`);
  // Both bar charts' value axes (promoted, suppressed) say pre-cap, or neither does.
  assert.equal(figures.length, 2);
  for (const f of figures) assert.equal(f.includes(AXIS), cap !== null, `${what}: value axis`);
}

/** An HTML page's text with escapeXml's entities undone. */
function unescaped(html: string): string {
  return html
    .replace(/&#39;/g, "'")
    .replace(/&quot;/g, '"')
    .replace(/&lt;/g, "<")
    .replace(/&gt;/g, ">")
    .replace(/&amp;/g, "&");
}

function ctxFor(sae: Sae): TaskContext {
  return {
    progress: () => {},
    signal: new AbortController().signal,
    neuronIndex: () => null,
    transcoders: () => tcSet,
    sae: () => sae,
    featureIndex: () => null,
    transcoderIndex: () => null,
    names: { model: "m", sae: "s" },
  };
}

/** The checkpoint's model and the test SAE, loaded before the suite's tests and the model disposed after. */
function loadedInSuite(dir: string): { model: HookedTransformer; sae: Sae } {
  const loaded = {} as { model: HookedTransformer; sae: Sae };
  before(() => {
    loaded.model = HookedTransformer.fromCheckpoint(loadCheckpoint(dir));
    loaded.sae = loadSaeLensDir(saeDir, { kernels: loaded.model.kernels });
  });
  after(() => loaded.model?.dispose());
  return loaded;
}

for (const m of MODELS) {
  describe(m.name, () => {
    const loaded = loadedInSuite(m.dir);

    test(`neuron page (HTML sections, text): ${m.cap === null ? "no note" : "note and pre-cap axes"}`, () => {
      const { model } = loaded;
      const page = neuronPageData(model, LAYER, NEURON);
      assert.equal(page.finalSoftCap, m.cap);
      assertSection(neuronReport(page), m.cap, "neuron report");
      assertNote(formatNeuronPage(page), m.cap, "neuron text page");
    });

    test(`SAE and transcoder feature pages: ${m.cap === null ? "no note" : "note and pre-cap axes"}`, () => {
      const { model, sae } = loaded;
      const pages = [
        featurePageData(model, sae, FEATURE),
        transcoderFeaturePageData(model, tcSet, LAYER, FEATURE),
      ];
      for (const page of pages) {
        const kind = page.transcoderLayer === undefined ? "SAE" : "transcoder";
        assert.equal(page.finalSoftCap, m.cap);
        assertSection(featureReport(page), m.cap, `${kind} feature report`);
        assertNote(formatFeaturePage(page), m.cap, `${kind} feature text page`);
      }
    });

    test("explorer: neuron and feature panels' sections, feature search by token's preCapNote", () => {
      const { model, sae } = loaded;
      const ctx = ctxFor(sae);
      assertSection(neuronTask(model, { layer: LAYER, neuron: NEURON }, ctx), m.cap, "neuron panel");
      assertSection(featureTask(model, { feature: FEATURE }, ctx), m.cap, "feature panel");
      const search = featureSearchTask(model, { token: model.tokenizer.decode([7]), top: 3 }, ctx);
      assert.equal(typeof search.preCapNote, "string");
      assertNote(search.preCapNote ?? "", m.cap, "feature search");
      // By text the list is of activations, which no cap touches: no note.
      const byText = featureSearchTask(model, { text: " a b c", top: 3 }, ctx);
      assert.equal("preCapNote" in byText, false);
    });

    test("study report: the top neurons' logit-effect captions and the graph's tables", () => {
      const { model } = loaded;
      const page = neuronPageData(model, LAYER, NEURON);
      const summary = { mean: 0.2, se: 0.05, ciLow: 0.1, ciHigh: 0.3, values: [0.1, 0.2, 0.3] };
      const res = {
        meta: { modelConfig: { finalSoftCap: m.cap } },
        study: {},
        focusGroup: "focus",
        groups: [{ name: "focus", normalised: true }],
        focus: {
          neurons: { layers: [LAYER], top: [{ label: "L1N5", exact: summary, attribution: 0.2 }] },
          neuronPages: [{ label: "L1N5", exactFraction: 0.2, page, prompts: [] }],
        },
        graph: {
          prompt: " a b c",
          transcoders: "tc",
          answer: " a",
          wrong: " b",
          nFeatures: 1,
          replacementScore: 0.5,
          completenessScore: 0.5,
          top: [{ nodeId: "1_3_2", layer: 1, feature: 3, pos: 2, token: " c", activation: 1, effect: 0.4 }],
          paths: [],
          cuePaths: [],
          file: "graph/graph.html",
        },
      } as unknown as StudyResults;
      const figures = neuronStage.sections(res).flatMap((x) => x.figures);
      const effects = figures.filter((f) => /-(promoted|suppressed)$/.test(f.name));
      assert.equal(effects.length, 2);
      for (const f of effects) {
        assertNote(f.caption, m.cap, `study figure ${f.name}`);
        assert.equal(JSON.stringify(f.figure).includes(AXIS), m.cap !== null, `study figure ${f.name}: axis`);
      }
      const [graph] = graphStage.sections(res);
      const tables = graph.tables ?? [];
      assert.equal(tables.length, 3);
      for (const t of tables) {
        assertNote(
          t.caption ?? "",
          m.cap,
          "study graph table",
          /cap 3\): these are attributions of the pre-cap logit difference/,
        );
        assert.equal(t.columns.at(-1)?.endsWith("(pre-cap)"), m.cap !== null, t.columns.join(", "));
      }
    });
  });
}

describe("the logit effects are pre-cap: equal to W · diag(1 + norm.weight) · embed_tokensᵀ in float64", () => {
  const hf = readHfTensors(capped.dir);
  const get = (name: string) => {
    const t = hf.get(name);
    assert.ok(t, name);
    return t;
  };
  const E = get("model.embed_tokens.weight"); // [V, D], tied
  const g = get("model.norm.weight"); // Gemma's RMSNorm scales by 1 + weight
  const down = get(`model.layers.${LAYER}.mlp.down_proj.weight`); // [D, d_mlp]
  const [V, D] = E.shape;
  const dMlp = down.shape[1];
  /** Every token's effect of residual direction `dir` [D]. */
  const reference = (dir: ArrayLike<number>) =>
    Array.from({ length: V }, (_, v) => {
      let s = 0;
      for (let d = 0; d < D; d++) s += dir[d] * (1 + g.data[d]) * E.data[v * D + d];
      return s;
    });
  const softCap = (x: number) => CAP * Math.tanh(x / CAP);

  /** The page's top and bottom tokens are the reference's extremes, with its values, and the cap would show. */
  function check(list: { top: TokenEffect[]; bottom: TokenEffect[] }, ref: number[]) {
    const order = [...ref.keys()].sort((a, b) => ref[b] - ref[a] || a - b);
    assert.deepEqual(
      list.top.map((t) => t.token),
      order.slice(0, list.top.length),
    );
    assert.deepEqual(
      list.bottom.map((t) => t.token),
      order.slice(-list.bottom.length).reverse(),
    );
    for (const t of [...list.top, ...list.bottom]) {
      assert.ok(Math.abs(t.value - ref[t.token]) < 1e-4 * (1 + Math.abs(ref[t.token])), `token ${t.token}`);
    }
    // Not vacuous: the largest effect is far enough from 0 that capping it would be seen.
    const top = list.top[0].value;
    assert.ok(Math.abs(top - softCap(top)) > 1e-2, `top effect ${top} too small to tell pre-cap from capped`);
  }

  const loaded = loadedInSuite(capped.dir);

  test("neuron page: W_out[n] = down_proj[:, n]", () => {
    const { model } = loaded;
    const page = neuronPageData(model, LAYER, NEURON);
    check(page.logitEffect, reference(Array.from({ length: D }, (_, d) => down.data[d * dMlp + NEURON])));
  });

  test("SAE feature page: W_dec[f] (SAELens scaling factor 1)", () => {
    const { model, sae } = loaded;
    assert.equal(sae.scalingFactor, 1);
    const page = featurePageData(model, sae, FEATURE);
    assert.ok(page.logitEffect);
    check(page.logitEffect, reference(saeWeights.W_dec.subarray(FEATURE * D, (FEATURE + 1) * D)));
  });

  test("transcoder feature page: the transcoder's W_dec[f]", () => {
    const { model } = loaded;
    const page = transcoderFeaturePageData(model, tcSet, LAYER, FEATURE);
    assert.ok(page.logitEffect);
    const wDec = tcSet.transcoders[LAYER].wDec;
    check(page.logitEffect, reference(wDec.subarray(FEATURE * D, (FEATURE + 1) * D)));
  });
});

describe("graphs: edges into logit nodes are pre-cap, their probabilities post-cap", () => {
  for (const m of MODELS.filter((x) => x.name !== "uncapped Gemma 2")) {
    test(`${m.name}: graph --html and its feature pages ${m.cap === null ? "say nothing" : "say so"}`, async () => {
      const slug = m.name.replace(/\W+/g, "-");
      const html = join(root, `${slug}-graph.html`);
      const pages = join(root, `${slug}-pages`);
      const r = await runCli([
        "graph",
        "--model",
        m.dir,
        "--backend",
        "reference",
        "--transcoders",
        tcDir,
        "--prompt",
        " a b c",
        "--html",
        html,
        "--feature-pages",
        pages,
      ]);
      assert.equal(r.code, 0, r.stderr);
      assertNote(unescaped(readFileSync(html, "utf8")), m.cap, "graph page", GRAPH_NOTE);
      const files = readdirSync(pages).filter((f) => f.endsWith(".html"));
      assert.ok(files.length > 0, "the graph keeps features");
      for (const f of files) {
        const page = unescaped(readFileSync(join(pages, f), "utf8"));
        assertNote(page, m.cap, `feature page ${f}`);
        assert.equal(page.includes(AXIS), m.cap !== null, `feature page ${f}: value axes`);
      }
    });

    test(`${m.name}: the explorer's graph job ${m.cap === null ? "has an empty" : "has the"} preCapNote`, async () => {
      const model = HookedTransformer.fromCheckpoint(loadCheckpoint(m.dir));
      try {
        const sae = loadSaeLensDir(saeDir, { kernels: model.kernels });
        const r = await graphTask(
          model,
          { prompt: " a b c", targets: [], nodeThreshold: 0.8, edgeThreshold: 0.98, modelName: m.name },
          ctxFor(sae),
        );
        assert.ok(r.graph.nodes.some((n) => n.feature_type === "logit"));
        if (m.cap === null) assert.equal(r.preCapNote, "");
        else assert.match(r.preCapNote, GRAPH_NOTE);
      } finally {
        model.dispose();
      }
    });
  }
});
