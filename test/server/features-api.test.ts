/**
 * The explorer with `serve --sae`: the active features in a prediction, feature search by token and by
 * text, and feature pages, on a real listen with the bundled stories260k SAE. Every number is recomputed
 * here independently: the features from the SAE's encoder on a plain cached run (no splice), the logit
 * effects from the whole-vocabulary product the feature page uses; and the refusals.
 */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { HookedTransformer } from "../../src/model/hooked-transformer.ts";
import { NeuronIndex } from "../../src/neurons/neuron-index.ts";
import { directionLogitEffect } from "../../src/neurons/neuron-page.ts";
import type { Sae } from "../../src/sae/sae.ts";
import { loadSaeLensDir, writeSaeLensDir } from "../../src/sae/saelens-dir.ts";
import { createServer } from "../../src/server/app.ts";
import { runCli } from "../helpers/cli.ts";
import { randomSaeWeights, saeConfigFor } from "../helpers/random-sae.ts";
import { type FixtureServer, startFixtureServer } from "./server-fixture.ts";

const SAE_DIR = new URL("../../models/stories260k-saes/blocks.2.hook_resid_pre", import.meta.url).pathname;
const PROMPT = "Once upon a time, there was a little girl named Lily. She";
const TOL = 1e-3; // onnx (server) vs reference (here) float32 kernels

let model: HookedTransformer;
let sae: Sae;
let withSae: FixtureServer;
let plain: FixtureServer;
const tmp = mkdtempSync(join(tmpdir(), "cs-features-api-"));

before(async () => {
  model = await HookedTransformer.fromPretrained("stories260k", { backend: "reference" });
  sae = loadSaeLensDir(SAE_DIR, { kernels: model.kernels });
  [withSae, plain] = await Promise.all([
    startFixtureServer({ sae: SAE_DIR }, "stories260k"),
    startFixtureServer({}, "stories260k"),
  ]);
});
after(async () => {
  await Promise.all([withSae?.server.close(), plain?.server.close()]);
  rmSync(tmp, { recursive: true, force: true });
});

async function post(srv: FixtureServer, path: string, body: unknown) {
  const res = await srv.api(path, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body),
  });
  return { status: res.status, json: (await res.json()) as Record<string, any> };
}

/** The SAE's features [pos, d_sae] from its encoder on the hook's activation of a plain run. */
function codes(text: string): { acts: Float32Array; n: number } {
  const tokens = model.toTokens(text);
  const x = model.runWithCache([tokens], { namesFilter: [sae.cfg.hookName] }).cache.get(sae.cfg.hookName);
  return { acts: sae.encode(x.data, tokens.length).post, n: tokens.length };
}

test("info names the SAE; predict lists the most active features at the chosen position, the prediction unchanged", async () => {
  const info = await (await withSae.api("/api/info")).json();
  assert.deepEqual(info.sae, { hook: "blocks.2.hook_resid_pre", dSae: 512 });
  const pos = 8;
  const r = await post(withSae, "/api/predict", { prompt: PROMPT, topK: 5, featurePos: pos });
  assert.equal(r.status, 200, JSON.stringify(r.json));
  const { acts } = codes(PROMPT);
  const row = acts.subarray(pos * 512, (pos + 1) * 512);
  const want = [...row.keys()].filter((f) => row[f] > 0).sort((a, b) => row[b] - row[a] || a - b);
  assert.ok(want.length >= 4, "a TopK k=8 SAE has active features");
  assert.equal(r.json.features.pos, pos);
  assert.deepEqual(
    r.json.features.top.map((t: { feature: number }) => t.feature),
    want.slice(0, 10),
  );
  for (const t of r.json.features.top) assert.ok(Math.abs(t.activation - row[t.feature]) < TOL);
  // The SAE is spliced in with its error term: the same prediction as without it.
  const bare = await post(plain, "/api/predict", { prompt: PROMPT, topK: 5 });
  assert.deepEqual(
    r.json.top.map((t: { token: number }) => t.token),
    bare.json.top.map((t: { token: number }) => t.token),
  );
  assert.equal(bare.json.features, undefined);
  const last = await post(withSae, "/api/predict", { prompt: PROMPT, topK: 5 });
  assert.equal(last.json.features.pos, model.toTokens(PROMPT).length - 1);
});

test("search by token: the features whose decoder direction raises it most, as their pages' logit effect", async () => {
  const r = await post(withSae, "/api/features/search", { token: " she", top: 5 });
  assert.equal(r.status, 200, JSON.stringify(r.json));
  const she = model.toSingleToken(" she");
  const effect = Array.from({ length: 512 }, (_, f) => {
    const row = sae.W_dec.slice(f * 64, (f + 1) * 64).map((v) => v / sae.scalingFactor);
    return directionLogitEffect(model, row)[she];
  });
  const want = [...effect.keys()].sort((a, b) => effect[b] - effect[a] || a - b).slice(0, 5);
  assert.deepEqual(
    r.json.features.map((f: { feature: number }) => f.feature),
    want,
  );
  for (const f of r.json.features) assert.ok(Math.abs(f.logitEffect - effect[f.feature]) < TOL);
  assert.ok(effect[want[0]] > 0.1, "not vacuous");
});

test("search by text: the features most active anywhere in it, with where", async () => {
  const r = await post(withSae, "/api/features/search", { text: PROMPT, top: 6 });
  assert.equal(r.status, 200, JSON.stringify(r.json));
  const { acts, n } = codes(PROMPT);
  const best = Array.from({ length: 512 }, (_, f) => {
    let v = 0;
    for (let p = 0; p < n; p++) v = Math.max(v, acts[p * 512 + f]);
    return v;
  });
  const want = [...best.keys()].sort((a, b) => best[b] - best[a] || a - b).slice(0, 6);
  assert.deepEqual(
    r.json.features.map((f: { feature: number }) => f.feature),
    want,
  );
  for (const f of r.json.features) {
    assert.ok(Math.abs(f.activation - best[f.feature]) < TOL);
    assert.ok(Math.abs(acts[f.pos * 512 + f.feature] - best[f.feature]) < TOL);
    assert.equal(f.token, model.toStrTokens(PROMPT)[f.pos]);
  }
});

test("a feature page: its logit effect, its activation on a text, and the missing index said", async () => {
  const res = await withSae.api(`/api/features/185?${new URLSearchParams({ text: PROMPT })}`);
  const json = (await res.json()) as Record<string, any>;
  assert.equal(res.status, 200, JSON.stringify(json));
  assert.equal(json.title, "SAE feature 185");
  assert.equal(json.indexed, false);
  assert.match(json.note, /--feature-index/);
  assert.ok(json.sections.some((s: { heading: string }) => /logit/i.test(s.heading)));
  // The page names the model and the SAE as given, never by this machine's paths.
  const repo = new URL("../..", import.meta.url).pathname;
  assert.ok(!JSON.stringify(json).includes(repo), "no absolute path in the page");
  assert.match(
    JSON.stringify(json),
    /Model stories260k; SAE blocks\.2\.hook_resid_pre at blocks\.2\.hook_resid_pre/,
  );
});

test("refusals: no SAE, a feature out of range, token and text together, a bad position", async () => {
  const none = await plain.api("/api/features/3");
  assert.equal(none.status, 404);
  assert.match(JSON.stringify(await none.json()), /serve --model M --sae DIR/);
  const cases: [string, unknown, RegExp][] = [
    ["/api/features/search", { token: " she", text: "hi" }, /either a token or a text/],
    ["/api/features/search", {}, /either a token or a text/],
    ["/api/features/search", { token: " she is" }, /token/],
    ["/api/predict", { prompt: "Hi", featurePos: 40 }, /featurePos 40 is past the prompt/],
  ];
  for (const [path, body, message] of cases) {
    const r = await post(withSae, path, body);
    assert.equal(r.status, 400, `${path} ${JSON.stringify(body)}`);
    assert.match(JSON.stringify(r.json), message);
  }
  const far = await withSae.api("/api/features/512");
  assert.equal(far.status, 400);
  assert.match(JSON.stringify(await far.json()), /from 0 to 511/);
});

test("with --feature-index the page has the index's top examples and quantile groups", async () => {
  const dir = join(tmp, "feature-index");
  const corpus = new URL("../../models/stories260k-saes/stories-140k-seed0.jsonl", import.meta.url).pathname;
  const built = await runCli([
    "index",
    "--model",
    "stories260k",
    "--sae",
    SAE_DIR,
    "--corpus",
    corpus,
    "--max-tokens",
    "1500",
    "--band-samples",
    "2",
    "--out",
    dir,
  ]);
  assert.equal(built.code, 0, built.stderr);
  const srv = await startFixtureServer({ sae: SAE_DIR, featureIndex: dir }, "stories260k");
  try {
    const res = await srv.api("/api/features/185");
    const json = (await res.json()) as Record<string, any>;
    assert.equal(res.status, 200, JSON.stringify(json));
    assert.equal(json.indexed, true);
    const headings = json.sections.map((x: { heading: string }) => x.heading);
    assert.ok(headings.includes("Top activating examples"), headings.join(", "));
    assert.ok(headings.includes("Quantile groups"), headings.join(", "));
    // The examples' text names the index's own numbers.
    const summary = NeuronIndex.open(dir).featureSummary(185);
    assert.ok(summary.examples.length > 0);
    const examples = json.sections.find((x: { heading: string }) => x.heading === "Top activating examples");
    assert.match(examples.text, new RegExp(`The ${summary.examples.length} tokens`));
  } finally {
    await srv.server.close();
  }
  // An index of another SAE is refused at start-up.
  const other = join(tmp, "other");
  await writeSaeLensDir(other, {
    cfg: saeConfigFor({ architecture: "standard", dIn: 64, dSae: 16, hookName: "blocks.2.hook_resid_pre" }),
    weights: randomSaeWeights({ architecture: "standard", dIn: 64, dSae: 16, seed: 2 }),
  });
  await assert.rejects(
    createServer({
      model: { model: "stories260k", backend: "onnx", process: true },
      sae: other,
      featureIndex: dir,
    }),
    /built for an SAE with 512 features.*--sae has 16/,
  );
});

test("serve --sae is checked at start-up: a misfit SAE and a neuron index as feature index are refused", async () => {
  const wide = join(tmp, "wide");
  await writeSaeLensDir(wide, {
    cfg: saeConfigFor({ architecture: "standard", dIn: 32, dSae: 16, hookName: "blocks.2.hook_resid_pre" }),
    weights: randomSaeWeights({ architecture: "standard", dIn: 32, dSae: 16, seed: 1 }),
  });
  const model = { model: "stories260k", backend: "onnx" as const, process: true };
  await assert.rejects(createServer({ model, sae: wide }), /d_in|width|32/);
  await assert.rejects(createServer({ model, sae: join(tmp, "nothing") }), /cfg\.json|exist/);
  await assert.rejects(
    createServer({ model, featureIndex: wide }),
    /needs the SAE it was built with: add --sae/,
  );
});
