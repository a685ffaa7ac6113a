/**
 * The explorer's transcoder feature pages (`serve --transcoders DIR`, GET /api/transcoder-features/:layer/:feature)
 * on the bundled stories260k set and its bundled feature index. The page is the one `feature --transcoders`
 * computes (transcoderFeaturePageData + featureReport), and its numbers are recomputed here independently:
 * each top example's activation from the cached hook and the encoder in float64, the histogram from the index's
 * own counts, the logit effect as W_dec[f] ∘ gain @ W_U in float64. Then the refusals and the start-up checks.
 */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import {
  loadTranscoderSet,
  type TranscoderSet,
  writeTranscoderSet,
} from "../../src/graphs/transcoder-set.ts";
import { HookedTransformer } from "../../src/model/hooked-transformer.ts";
import { transcoderFeaturePageData } from "../../src/neurons/feature-page.ts";
import { featureReport } from "../../src/neurons/feature-report.ts";
import { NeuronIndex } from "../../src/neurons/neuron-index.ts";
import { createServer, type ExplorerServer, type ServerOptions } from "../../src/server/app.ts";
import { formatToken } from "../../src/tokenizer/format-token.ts";
import { cliResult, spawnCli } from "../helpers/cli.ts";
import { randomTranscoderSet } from "../helpers/random-transcoder.ts";
import { type FixtureServer, startFixtureServer } from "./server-fixture.ts";

const SET_DIR = "models/stories260k-transcoders"; // as a user types it (tests run from the repo root)
const INDEX_DIR = join(SET_DIR, "feature-index");
const TEXT = "Once upon a time, there was a little girl named Lily. She";
const TOL = 1e-4; // float32 kernels vs float64 here

const MAX_QUEUE = 2;
let model: HookedTransformer;
let set: TranscoderSet;
let index: NeuronIndex;
let fx: FixtureServer;
const tmp = mkdtempSync(join(tmpdir(), "cs-tc-features-api-"));

before(async () => {
  [model, set, fx] = await Promise.all([
    HookedTransformer.fromPretrained("stories260k", { backend: "onnx" }),
    loadTranscoderSet(SET_DIR),
    startFixtureServer({ transcoders: SET_DIR, maxQueue: MAX_QUEUE }, "stories260k"),
  ]);
  index = NeuronIndex.open(INDEX_DIR);
});
after(async () => {
  model?.dispose();
  await fx?.server.close();
  rmSync(tmp, { recursive: true, force: true });
});

interface Figure {
  kind: string;
  title: string;
  data?: { samples: { label: string; tokens: string[]; values: number[] }[] };
  spec?: { data: { values: { label: string; value: number }[] } };
}
interface PageResponse {
  title: string;
  sections: { heading: string; text?: string; figures: { figure: Figure }[] }[];
  indexed: boolean;
  layer: number;
  feature: number;
  note?: string;
}

async function page(layer: number | string, feature: number | string, text?: string) {
  const query = text === undefined ? "" : `?${new URLSearchParams({ text })}`;
  const r = await fx.api(`/api/transcoder-features/${layer}/${feature}${query}`);
  return {
    status: r.status,
    json: (await r.json()) as PageResponse & { error: { message: string; fix: string } },
  };
}

function section(p: PageResponse, heading: string) {
  const s = p.sections.find((x) => x.heading === heading);
  assert.ok(s, `the page has a "${heading}" section`);
  return s;
}

/** Feature f of layer l's activation at every position of `tokens`: JumpReLU/ReLU of W_enc·x + b_enc, float64. */
function activations(layer: number, f: number, tokens: number[]): number[] {
  const hook = `blocks.${layer}.${set.featureInputHook}`;
  const x = model.runWithCache([tokens], { namesFilter: [hook], logits: "none" }).cache.get(hook).data;
  const tc = set.transcoders[layer];
  const D = tc.dModel;
  return tokens.map((_, p) => {
    let pre = tc.bEnc[f];
    for (let d = 0; d < D; d++) pre += tc.wEnc[f * D + d] * x[p * D + d];
    return pre > (tc.threshold ? tc.threshold[f] : 0) ? pre : 0;
  });
}

function assertNear(got: number[], want: number[], tol: number, what: string): void {
  assert.equal(got.length, want.length, what);
  const worst = Math.max(0, ...got.map((v, k) => Math.abs(v - want[k])));
  assert.ok(worst < tol, `${what}: off by ${worst}`);
}

/** A feature of `layer` that the index saw fire (so the page has examples to check). */
function firingFeature(layer: number): number {
  const f = [...Array(set.transcoders[layer].dTranscoder).keys()].find(
    (k) => index.transcoderFeatureSummary(layer, k).density > 0.01,
  );
  assert.ok(f !== undefined, `layer ${layer} has a feature that fires`);
  return f;
}

test("a transcoder feature's page is feature --transcoders' page, its numbers those of the index and the weights", async () => {
  const info = (await (await fx.api("/api/info")).json()) as { transcoderIndex: boolean; features: string[] };
  assert.equal(info.transcoderIndex, true, "the bundled set's own index is found");
  assert.ok(info.features.includes("transcoderFeature"));
  const layer = 3;
  const feature = firingFeature(layer);
  const got = await page(layer, feature, TEXT);
  assert.equal(got.status, 200, JSON.stringify(got.json));
  const p = got.json;

  // What `feature --transcoders SET --layer L --feature F --index IDX --text T` computes for the same feature.
  const want = featureReport(
    transcoderFeaturePageData(model, set, layer, feature, {
      index,
      text: TEXT,
      setName: SET_DIR,
      modelName: "stories260k",
    }),
  );
  assert.equal(p.title, `Transcoder feature ${feature} of layer ${layer}`);
  assert.deepEqual([p.layer, p.feature, p.indexed], [layer, feature, true]);
  assert.deepEqual(
    { title: p.title, sections: p.sections },
    JSON.parse(JSON.stringify({ title: want.title, sections: want.sections })),
  );

  // Top examples: the index's stored values, and each is the feature's own activation there (float64 here).
  const summary = index.transcoderFeatureSummary(layer, feature);
  const samples = section(p, "Top activating examples").figures[0].figure.data!.samples;
  assert.equal(samples.length, summary.examples.length);
  for (const [i, s] of samples.entries()) {
    const e = summary.examples[i];
    const m = /^#(\d+) +(\S+) +\(context (\d+), token (\d+)\)$/.exec(s.label);
    assert.ok(m, s.label);
    assert.deepEqual([Number(m[1]), Number(m[3]), Number(m[4])], [i + 1, e.contextId, e.position]);
    const context = index.contextTokens(e.contextId);
    const acts = activations(layer, feature, context);
    const start = Math.max(0, e.position - 24);
    assert.ok(
      Math.abs(acts[e.position] - e.value) < 1e-3,
      `example ${i}: index ${e.value}, here ${acts[e.position]}`,
    );
    assert.deepEqual(s.tokens, model.toStrTokens(context).slice(start, start + s.tokens.length));
    assertNear(s.values, acts.slice(start, start + s.values.length), 1e-3, `example ${i}'s activations`);
  }
  assert.ok(summary.examples[0].value > 0, "not vacuous: the feature fires");

  // Histogram: log10(1 + count) of the index's bins, from the first to the last non-empty one.
  const bars = section(p, "Activation distribution").figures[0].figure.spec!.data.values.map((b) => b.value);
  const counts = summary.histogram.counts;
  const first = counts.findIndex((c) => c > 0);
  const last = counts.findLastIndex((c) => c > 0);
  assert.deepEqual(
    bars,
    counts.slice(first, last + 1).map((c) => Math.log10(1 + c)),
  );

  // Logit effect: W_dec[f] through ln_final's gain and W_U, in float64.
  const { dModel: D, dVocab: V } = model.cfg;
  const W_U = model.weights.W_U.data;
  // Processed weights have ln_final's gain folded into W_U (then there is no lnFinal).
  const gain = model.weights.lnFinal?.w.data ?? null;
  const wDec = set.transcoders[layer].wDec;
  const effect = Array.from({ length: V }, (_, v) => {
    let s = 0;
    for (let d = 0; d < D; d++) s += wDec[feature * D + d] * (gain ? gain[d] : 1) * W_U[d * V + v];
    return s;
  });
  const order = [...effect.keys()].sort((a, b) => effect[b] - effect[a] || a - b);
  const [top, bottom] = section(p, "Direct effect on the logits").figures.map(
    (f) => f.figure.spec!.data.values,
  );
  for (const [bars, tokens] of [
    [top, order.slice(0, 10)],
    [bottom, order.slice(-10).reverse()],
  ] as const) {
    assert.deepEqual(
      bars.map((b) => b.label),
      tokens.map((t) => formatToken(model.tokenizer.decode([t]))),
    );
    assertNear(
      bars.map((b) => b.value),
      tokens.map((t) => effect[t]),
      TOL,
      "logit effects",
    );
  }

  // The text: the feature's activation at each of its tokens.
  const own = section(p, "Activation on your text").figures[0].figure.data!.samples[0];
  const ownActs = activations(layer, feature, model.toTokens(TEXT));
  assertNear(own.values, ownActs, 1e-3, "activations on the text");
});

test("another layer's feature of the same number is another page", async () => {
  const feature = firingFeature(3);
  const [a, b] = await Promise.all([page(3, feature), page(2, feature)]);
  assert.equal(b.status, 200);
  assert.equal(b.json.title, `Transcoder feature ${feature} of layer 2`);
  assert.notDeepEqual(a.json.sections, b.json.sections);
});

test("bad layers and features are refused with 400 naming the range, before anything is queued; the token is needed", async () => {
  const cases: [string, string, RegExp, RegExp][] = [
    ["5", "7", /layer .*"5".*not a layer/, /from 0 to 4/],
    ["x", "7", /layer .*"x"/, /from 0 to 4/],
    ["3", "512", /feature .*"512".*layer 3/, /from 0 to 511/],
    ["3", "-1", /feature .*"-1"/, /from 0 to 511/],
    ["3", "1.5", /feature .*"1\.5"/, /from 0 to 511/],
  ];
  let updates = 0;
  const onUpdate = () => updates++;
  fx.server.queue.events.on("update", onUpdate);
  try {
    for (const [layer, feature, message, fix] of cases) {
      const r = await page(layer, feature);
      assert.equal(r.status, 400, `${layer}/${feature}`);
      assert.match(r.json.error.message, message);
      assert.match(r.json.error.fix, fix);
    }
    const long = await page(3, 7, " girl".repeat(600));
    assert.equal(long.status, 400);
  } finally {
    fx.server.queue.events.off("update", onUpdate);
  }
  assert.equal(updates, 0, "no run was queued");
  assert.equal((await fetch(`${fx.base}/api/transcoder-features/3/7`)).status, 401);
});

test("a page waits in the bounded queue: past --max-queue it is refused with 429", async () => {
  const ids: string[] = [];
  try {
    for (let k = 0; k < MAX_QUEUE; k++) {
      const r = await fx.api("/api/jobs", {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({
          kind: "graph",
          // ~53 tokens (a graph takes at most 64): a job that runs for a while
          prompt: "Once upon a time, there was a little girl. ".repeat(4),
        }),
      });
      assert.equal(r.status, 202);
      ids.push(((await r.json()) as { id: string }).id);
    }
    const r = await fx.api("/api/transcoder-features/3/7");
    assert.equal(r.status, 429);
    assert.ok(r.headers.get("retry-after"));
  } finally {
    for (const id of ids) fx.server.queue.cancel(id);
    await Promise.all(ids.map((id) => fx.server.queue.settled(id)));
  }
});

test("without transcoders, or without their feature index, a page is a 404 saying how to get one", async () => {
  const bare = join(tmp, "no-index-set");
  await writeTranscoderSet(
    bare,
    randomTranscoderSet({ layers: 5, dModel: 64, dTc: 16, seed: 2, jump: () => false, skip: () => false }),
  );
  const [plain, noIndex] = await Promise.all([
    startFixtureServer({}, "stories260k"),
    startFixtureServer({ transcoders: bare }, "stories260k"),
  ]);
  try {
    const a = await plain.api("/api/transcoder-features/3/7");
    assert.equal(a.status, 404);
    assert.match(
      ((await a.json()) as { error: { fix: string } }).error.fix,
      /serve --model M --transcoders DIR/,
    );
    const info = (await (await noIndex.api("/api/info")).json()) as { transcoderIndex: boolean };
    assert.equal(info.transcoderIndex, false);
    const b = await noIndex.api("/api/transcoder-features/3/7");
    assert.equal(b.status, 404);
    const err = ((await b.json()) as { error: { message: string; fix: string } }).error;
    assert.match(err.message, /no feature index of its transcoders/);
    assert.match(
      err.fix,
      /circuitscope index --model stories260k --transcoders DIR --corpus C --out DIR\/feature-index/,
    );
    assert.match(err.fix, /--transcoder-index/);
  } finally {
    await Promise.all([plain.server.close(), noIndex.server.close()]);
  }
});

/** createServer refuses `opts` with `message`; a server that starts anyway is closed, so the test ends. */
async function refusedAtStartUp(opts: ServerOptions, message: RegExp): Promise<void> {
  let started: ExplorerServer | undefined;
  try {
    await assert.rejects(async () => {
      started = await createServer(opts);
    }, message);
  } finally {
    await started?.close();
  }
}

test("--transcoder-index is checked at start-up: of this set, a transcoder index, and only with --transcoders", async () => {
  const model = { model: "stories260k", backend: "onnx" as const, process: true };
  const narrow = join(tmp, "narrow-set");
  await writeTranscoderSet(
    narrow,
    randomTranscoderSet({ layers: 5, dModel: 64, dTc: 16, seed: 4, jump: () => false, skip: () => false }),
  );
  await refusedAtStartUp(
    { model, transcoders: narrow, transcoderIndex: INDEX_DIR },
    /feature-index was built for models\/stories260k-transcoders \(512 features per layer.*layer 0 has 16 features.*circuitscope index --transcoders/,
  );
  await refusedAtStartUp(
    {
      model,
      transcoders: SET_DIR,
      transcoderIndex: "models/stories260k-saes/feature-index/blocks.2.hook_resid_pre",
    },
    /is an SAE feature index, not a transcoder feature index/,
  );
  await refusedAtStartUp(
    { model, transcoderIndex: INDEX_DIR },
    /--transcoder-index .* needs the transcoder set it was built with: add --transcoders DIR/,
  );
});

test("serve --transcoder-index without --transcoders exits non-zero naming the fix, before printing an address", async () => {
  const child = spawnCli(["serve", "--model", "stories260k", "--port", "0", "--transcoder-index", INDEX_DIR]);
  try {
    const r = await cliResult(child);
    assert.notEqual(r.code, 0);
    assert.match(
      r.stderr,
      /--transcoder-index .*feature-index needs the transcoder set it was built with: add --transcoders DIR/,
    );
    assert.equal(r.stdout, "", "no explorer address was printed");
  } finally {
    child.kill("SIGKILL");
  }
});
