/**
 * `GET /api/neurons/:layer/:neuron` on a real listen, with and without a neuron index. Everything the
 * page shows is recomputed here independently: the index read directly, W_out[n] @ W_U from the weights,
 * and `mlp.hook_post` from an in-process run on the reference backend (the server runs onnx).
 */
import assert from "node:assert/strict";
import { cpSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, test } from "node:test";
import type { HookedTransformer } from "../../src/model/hooked-transformer.ts";
import { formatToken } from "../../src/tokenizer/format-token.ts";
import type { ChartFigure, TokenFigure } from "../../src/viz/figure.ts";
import type { ReportSection } from "../../src/viz/html/report.ts";
import { loadFixtureModel } from "../helpers/reference.ts";
import { buildFixtureIndex, INDEX_TOP_K, INDEXED_LAYERS, type IndexFixture } from "./neuron-index-fixture.ts";
import { type FixtureServer, startFixtureServer } from "./server-fixture.ts";

/** A bar chart's normalised input (`barChart` keeps it beside the Vega-Lite spec). */
type BarFigure = ChartFigure & { data: { labels: string[]; values: number[] } };

interface NeuronResponse {
  title: string;
  sections: ReportSection[];
  indexed: boolean;
}

const TOL = 1e-4; // onnx (server) vs reference (here) float32 kernels
const NEURONS: [number, number][] = [
  [0, 3],
  [2, 7],
  [2, 200],
];

let model: HookedTransformer;
let fixture: IndexFixture;
let indexed: FixtureServer;
let plain: FixtureServer;

before(async () => {
  model = loadFixtureModel({ backend: "reference" });
  fixture = await buildFixtureIndex(model);
  [indexed, plain] = await Promise.all([
    startFixtureServer({ neuronIndex: fixture.indexDir }),
    startFixtureServer(),
  ]);
});
after(async () => {
  await Promise.all([indexed?.server.close(), plain?.server.close()]);
  fixture?.remove();
});

async function getJson(srv: FixtureServer, path: string) {
  const res = await srv.api(path);
  return { status: res.status, json: (await res.json()) as Record<string, any> };
}

async function neuronPage(srv: FixtureServer, layer: number, neuron: number, text?: string) {
  const query = text === undefined ? "" : `?${new URLSearchParams({ text })}`;
  const r = await getJson(srv, `/api/neurons/${layer}/${neuron}${query}`);
  assert.equal(r.status, 200, JSON.stringify(r.json));
  return r.json as NeuronResponse;
}

function section(page: NeuronResponse, heading: string): ReportSection | undefined {
  return page.sections.find((s) => s.heading === heading);
}

/** The neuron's activation at every token, from a full cache of an in-process run. */
function hookPost(layer: number, neuron: number, tokens: number[]): number[] {
  const { cache } = model.runWithCache([tokens], {
    namesFilter: [`blocks.${layer}.mlp.hook_post`],
    logits: "none",
  });
  const acts = cache.get(`blocks.${layer}.mlp.hook_post`); // [1, pos, d_mlp]
  return tokens.map((_, p) => acts.at(0, p, neuron));
}

/** W_out[layer][neuron] · W_U[:, v] for every v, in float64, column by column. */
function directLogitEffect(layer: number, neuron: number): Float64Array {
  const { dModel: D, dVocab: V } = model.cfg;
  const wOut = model.weights.blocks[layer].W_out; // [d_mlp, d_model]
  const wU = model.weights.W_U; // [d_model, d_vocab]
  const effect = new Float64Array(V);
  for (let v = 0; v < V; v++) {
    let sum = 0;
    for (let d = 0; d < D; d++) sum += wOut.data[neuron * D + d] * wU.data[d * V + v];
    effect[v] = sum;
  }
  return effect;
}

function assertClose(actual: number[], expected: number[], what: string): void {
  assert.equal(actual.length, expected.length, `${what}: length`);
  for (const [i, a] of actual.entries())
    assert.ok(Math.abs(a - expected[i]) < TOL, `${what} [${i}]: ${a} vs ${expected[i]}`);
}

/** The bar chart lists the n most extreme tokens in order; near-ties may swap, nothing else may. */
function assertExtremes(fig: BarFigure, effect: Float64Array, largest: boolean): void {
  const order = Array.from(effect.keys()).sort((a, b) =>
    largest ? effect[b] - effect[a] : effect[a] - effect[b],
  );
  const n = fig.data.labels.length;
  assert.equal(n, 10);
  const expected = order.slice(0, n);
  assertClose(
    fig.data.values,
    expected.map((t) => effect[t]),
    "logit effect",
  );
  for (const [i, label] of fig.data.labels.entries()) {
    const t = expected[i];
    const tiedWith = expected.filter((u) => Math.abs(effect[u] - effect[t]) < TOL);
    assert.ok(
      // Bar labels are written the one way tokens are written everywhere (formatToken).
      tiedWith.some((u) => formatToken(model.tokenizer.decode([u])) === label),
      `rank ${i}: ${label}, expected ${formatToken(model.tokenizer.decode([t]))}`,
    );
  }
}

function assertLogitEffect(page: NeuronResponse, layer: number, neuron: number): void {
  const s = section(page, "Direct effect on the logits");
  assert.ok(s, "a logit effect section");
  const [top, bottom] = s.figures.map((f) => f.figure as BarFigure);
  assert.equal(top.kind, "bar");
  const effect = directLogitEffect(layer, neuron);
  assertExtremes(top, effect, true);
  assertExtremes(bottom, effect, false);
  assert.ok(top.data.values[0] > 0 && bottom.data.values[0] < 0);
}

test("info says whether an index was given", async () => {
  assert.equal((await getJson(indexed, "/api/info")).json.neuronIndex, true);
  assert.equal((await getJson(plain, "/api/info")).json.neuronIndex, false);
});

test("top examples are the index's, read directly, with activations equal to hook_post on each context", async () => {
  for (const [layer, neuron] of NEURONS) {
    const page = await neuronPage(indexed, layer, neuron);
    assert.equal(page.indexed, true);
    assert.equal(page.title, `Neuron L${layer} N${neuron}`);
    const summary = fixture.index.summary(layer, neuron);
    assert.equal(summary.examples.length, INDEX_TOP_K);
    const s = section(page, "Top activating examples");
    assert.ok(s, "a top examples section");
    assert.match(
      s.text ?? "",
      new RegExp(`The ${INDEX_TOP_K} tokens .*\\(${summary.tokens} tokens indexed\\)`),
    );
    const fig = s.figures[0].figure as TokenFigure;
    assert.equal(fig.kind, "tokens");
    assert.equal(fig.data.samples.length, summary.examples.length);
    for (const [i, e] of summary.examples.entries()) {
      const sample = fig.data.samples[i];
      assert.match(
        sample.label ?? "",
        new RegExp(`^#${i + 1} .*\\(context ${e.contextId}, token ${e.position}\\)$`),
      );
      const tokens = fixture.index.contextTokens(e.contextId);
      // The window shows up to 24 tokens before the max token and 8 after.
      const start = Math.max(0, e.position - 24);
      const end = Math.min(tokens.length, e.position + 9);
      assert.deepEqual(sample.tokens, model.toStrTokens(tokens).slice(start, end));
      assertClose(
        sample.values,
        hookPost(layer, neuron, tokens).slice(start, end),
        `L${layer}N${neuron} #${i}`,
      );
      assert.ok(
        Math.abs(sample.values[e.position - start] - e.value) < TOL,
        "the stored max is where it was",
      );
    }
    const dist = section(page, "Activation distribution");
    assert.match(dist?.text ?? "", new RegExp(`${(100 * summary.density).toFixed(2)}%`));
  }
});

test("the logit effect is W_out[n] @ W_U from the weights: top and bottom tokens, with and without an index", async () => {
  for (const [layer, neuron] of NEURONS) {
    assertLogitEffect(await neuronPage(indexed, layer, neuron), layer, neuron);
    assertLogitEffect(await neuronPage(plain, layer, neuron), layer, neuron);
  }
});

test("?text= shows the activation at every token of the text, equal to mlp.hook_post", async () => {
  const cases = [
    {
      text: "The miller counted the sacks of grain twice.",
      as: "The miller counted the sacks of grain twice.",
    },
    // Typographic quotes are read as ASCII, as in the corpus.
    { text: "He didn\u2019t say \u201cflour\u201d.", as: `He didn't say "flour".` },
  ];
  for (const srv of [indexed, plain]) {
    for (const { text, as } of cases) {
      const page = await neuronPage(srv, 2, 7, text);
      const s = section(page, "Activation on your text");
      assert.ok(s, "an own-text section");
      const sample = (s.figures[0].figure as TokenFigure).data.samples[0];
      const tokens = model.toTokens(as);
      assert.deepEqual(sample.tokens, model.toStrTokens(tokens));
      assertClose(sample.values, hookPost(2, 7, tokens), "own text");
    }
  }
});

test("without an index the page says so and has no examples, but still the logit effect and own text", async () => {
  const page = await neuronPage(plain, 2, 7, "The river froze.");
  assert.equal(page.indexed, false);
  assert.deepEqual(
    page.sections.map((s) => s.heading),
    ["Direct effect on the logits", "Activation on your text"],
  );
  const withIndex = await neuronPage(indexed, 2, 7);
  assert.equal(withIndex.indexed, true);
  assert.ok(!withIndex.sections.some((s) => s.heading === "Activation on your text"), "no text, no section");
});

test("bad layers, neurons and texts are 400 with a clear message; the server keeps serving", async () => {
  const { nLayers, dMlp } = model.cfg;
  const cases: [string, RegExp][] = [
    [`/api/neurons/${nLayers}/0`, /layer 3 does not exist.*3 layers.*0 to 2/s],
    [`/api/neurons/0/${dMlp}`, /neuron 256 does not exist.*256 neurons.*0 to 255/s],
    ["/api/neurons/0/99999999", /neuron.*0 to 255/s],
    ["/api/neurons/0/-1", /neuron in the URL, "-1", is not a whole number.*0 to 255/s],
    ["/api/neurons/x/1", /layer in the URL, "x", is not a whole number.*0 to 2/s],
    ["/api/neurons/0/1.5", /neuron in the URL, "1.5", is not a whole number/],
    [
      `/api/neurons/0/1?${new URLSearchParams({ text: " the".repeat(70) })}`,
      /text is 71 tokens.*context is 64.*at most 63/s,
    ],
    [`/api/neurons/0/1?${new URLSearchParams({ text: "x".repeat(9000) })}`, /text.*8000 characters/],
    ["/api/neurons/0/1?text=", /text/],
    ["/api/neurons/0/1?txt=hi", /additional/],
  ];
  // A layer the model has but the index does not: the fix is to index it.
  const missing = [0, 1, 2].find((l) => !INDEXED_LAYERS.includes(l)) as number;
  for (const srv of [indexed, plain]) {
    for (const [path, pattern] of cases) {
      const r = await getJson(srv, path);
      assert.equal(r.status, 400, `${path}: ${JSON.stringify(r.json)}`);
      assert.match(`${r.json.error.message} ${r.json.error.fix ?? ""}`, pattern, path);
    }
  }
  // A layer the index does not hold: a page without corpus examples, with a note saying how to index it.
  const r = await getJson(indexed, `/api/neurons/${missing}/0`);
  assert.equal(r.status, 200);
  assert.equal(r.json.indexed, false);
  assert.match(r.json.note, /no layer 1 \(it has 0, 2\).*--layers/);
  // The server without an index looks up any layer.
  assert.equal((await neuronPage(plain, missing, 0)).indexed, false);
  for (const srv of [indexed, plain]) {
    const ok = await neuronPage(srv, 2, 7, "still here");
    assert.ok(section(ok, "Activation on your text"));
  }
});

test("a wrong --neuron-index fails at start-up with the fix, not at the first lookup", async () => {
  await assert.rejects(
    startFixtureServer({ neuronIndex: fixture.dir }), // the corpus's directory, not the index
    /is not a neuron index \(no manifest\.json\).*circuitscope index/s,
  );
  // An index of a model with other MLP sizes (here: its manifest says so).
  const other = join(fixture.dir, "other-model-index");
  cpSync(fixture.indexDir, other, { recursive: true });
  const manifest = JSON.parse(readFileSync(join(other, "manifest.json"), "utf8"));
  manifest.settings.dMlp = 3072;
  writeFileSync(join(other, "manifest.json"), JSON.stringify(manifest));
  await assert.rejects(
    startFixtureServer({ neuronIndex: other }),
    /d_mlp 3072.*d_mlp 256.*pass the index built with this model/s,
  );
  // The servers already running were not disturbed.
  assert.equal((await neuronPage(indexed, 2, 7)).indexed, true);
});
