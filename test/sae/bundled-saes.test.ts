/**
 * The bundled SAEs: short ids (`--sae stories260k/blocks.2.hook_resid_pre`) resolved by the one `--sae`
 * resolver, and their committed feature indexes checked against the committed SAEs — every stored top example's
 * activation recomputed in float64 from the SAE's weights on the model's activation at that token — and opened by
 * `feature` with no `--index`.
 */
import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { HookedTransformer } from "../../src/model/hooked-transformer.ts";
import { NeuronIndex } from "../../src/neurons/neuron-index.ts";
import { bundledFeatureIndexDir, bundledSaeDir, bundledSaeIds } from "../../src/sae/bundled-saes.ts";
import { resolveSaeDir } from "../../src/sae/resolve-sae.ts";
import { readSaeConfig } from "../../src/sae/saelens-dir.ts";
import { SafetensorsReader } from "../../src/weights/safetensors.ts";
import { runCli } from "../helpers/cli.ts";
import { REPO_ROOT } from "../helpers/fixture.ts";

const SAES = join(REPO_ROOT, "models/stories260k-saes");
const INDEXES = join(SAES, "feature-index");
const CORPUS = "models/stories260k-saes/stories-140k-seed0.jsonl";
const work = mkdtempSync(join(tmpdir(), "cs-bundled-saes-"));
after(() => rmSync(work, { recursive: true, force: true }));

/** The SAE folders on disk, read independently of bundled-saes.ts: every blocks.L.hook_resid_pre with a cfg.json. */
const folders = readdirSync(SAES)
  .filter((f) => existsSync(join(SAES, f, "cfg.json")))
  .sort();

test("a short id resolves to the bundled SAE's directory; the ids list every bundled SAE", async () => {
  assert.deepEqual(
    folders,
    [0, 1, 2, 3, 4].map((l) => `blocks.${l}.hook_resid_pre`),
  );
  assert.deepEqual(
    bundledSaeIds(),
    folders.map((f) => `stories260k/${f}`),
  );
  for (const f of folders) {
    const dir = await resolveSaeDir(`stories260k/${f}`, { offline: true });
    assert.equal(dir, join(SAES, f));
    // The folder is the SAE's hook: the id names what the SAE reads.
    assert.equal(readSaeConfig(dir).hookName, f);
  }
  // Not a bundled model's name: left to the path / hub branches.
  assert.equal(bundledSaeDir("someone/saes/blocks.2.hook_resid_pre"), undefined);
  assert.equal(bundledSaeDir("models/stories260k-saes/blocks.2.hook_resid_pre"), undefined);
});

test("an unknown short id is refused listing the bundled ones, before any hub request", async () => {
  for (const bad of [
    "stories260k/blocks.9.hook_resid_pre",
    "stories260k/feature-index",
    "stories260k/feature-index/blocks.2.hook_resid_pre",
    "stories260k/",
  ]) {
    await assert.rejects(resolveSaeDir(bad, { offline: true }), (err: Error) => {
      assert.match(err.message, new RegExp(`--sae ${bad.replace(/[.]/g, "\\.")}: no bundled SAE`));
      for (const f of folders) assert.ok(err.message.includes(`stories260k/${f}`), err.message);
      return true;
    });
  }
});

test("each bundled SAE has its feature index beside it; other SAEs have none", () => {
  for (const f of folders) assert.equal(bundledFeatureIndexDir(join(SAES, f)), join(INDEXES, f));
  assert.equal(bundledFeatureIndexDir(work), null);
  assert.equal(bundledFeatureIndexDir(join(REPO_ROOT, "models/stories260k")), null);
});

/** x [d_in] → the SAE's feature activations [d_sae], in float64: TopK of (x − b_dec) W_enc + b_enc, relu'd. */
function encode64(dir: string, k: number) {
  const r = SafetensorsReader.open(join(dir, "sae_weights.safetensors"));
  const [W_enc, b_enc, b_dec] = ["W_enc", "b_enc", "b_dec"].map((n) => Float64Array.from(r.readFloat32(n)));
  r.close();
  const dIn = b_dec.length;
  const dSae = b_enc.length;
  return (x: ArrayLike<number>): Float64Array => {
    const pre = Float64Array.from(b_enc);
    for (let i = 0; i < dIn; i++) {
      const xi = x[i] - b_dec[i];
      for (let j = 0; j < dSae; j++) pre[j] += xi * W_enc[i * dSae + j];
    }
    const order = [...pre.keys()].sort((a, b) => pre[b] - pre[a] || a - b).slice(0, k);
    const out = new Float64Array(dSae);
    for (const j of order) out[j] = Math.max(0, pre[j]);
    return out;
  };
}

test("every bundled index is of its SAE: stored top activations equal the SAE's, recomputed on the stored text", async () => {
  const model = await HookedTransformer.fromPretrained("stories260k");
  try {
    for (const f of folders) {
      const saeDir = join(SAES, f);
      const cfg = readSaeConfig(saeDir);
      const index = NeuronIndex.open(join(INDEXES, f));
      const s = index.manifest.settings;
      assert.deepEqual(s.sae, { path: `stories260k/${f}`, hook: cfg.hookName, dSae: cfg.dSae });
      assert.equal(s.corpus, CORPUS);
      assert.equal(index.manifest.progress.complete, true);
      const encode = encode64(saeDir, cfg.k!);
      // The hook's activations [pos, d_in] of every stored context, run in batches of equal length.
      const acts = new Map<number, Float32Array>();
      const ids = [
        ...new Set(
          Array.from({ length: cfg.dSae }, (_, f) =>
            index.featureSummary(f).examples.map((e) => e.contextId),
          ).flat(),
        ),
      ];
      const byLength = new Map<number, number[]>();
      for (const id of ids) {
        const n = index.contextTokens(id).length;
        byLength.set(n, [...(byLength.get(n) ?? []), id]);
      }
      for (const [n, group] of byLength)
        for (let i = 0; i < group.length; i += 64) {
          const batch = group.slice(i, i + 64);
          const { cache } = model.runWithCache(
            batch.map((id) => index.contextTokens(id)),
            { namesFilter: [cfg.hookName], logits: "none" },
          );
          const data = cache.get(cfg.hookName).data as Float32Array;
          for (const [b, id] of batch.entries())
            acts.set(id, data.slice(b * n * cfg.dIn, (b + 1) * n * cfg.dIn));
        }
      const hookAt = (contextId: number): Float32Array => acts.get(contextId)!;
      let checked = 0;
      let worst = 0;
      for (let feature = 0; feature < cfg.dSae; feature++) {
        const summary = index.featureSummary(feature);
        // The histogram counts every indexed token once; the positive ones are at most all of them.
        const counts = summary.histogram.counts;
        assert.equal(
          counts.reduce((a, b) => a + b, 0),
          summary.tokens,
        );
        const values = summary.examples.map((e) => e.value);
        assert.deepEqual(
          values,
          [...values].sort((a, b) => b - a),
        );
        if (summary.density === 0) assert.equal(values.filter((v) => v > 0).length, 0);
        for (const e of summary.examples) {
          const x = hookAt(e.contextId).subarray(e.position * cfg.dIn, (e.position + 1) * cfg.dIn);
          const want = encode(x)[feature];
          worst = Math.max(worst, Math.abs(e.value - want));
          assert.ok(
            Math.abs(e.value - want) <= 1e-3 * Math.max(1, want),
            `${f} feature ${feature}: stored ${e.value}, recomputed ${want} (context ${e.contextId}, token ${e.position}) — rebuild the index (models/stories260k-saes/README.md)`,
          );
          checked++;
        }
      }
      assert.ok(checked > cfg.dSae, `${f}: ${checked} examples checked`);
      assert.ok(worst < 1e-3, `${f}: worst difference ${worst}`);
    }
  } finally {
    model.dispose();
  }
});

test("CLI: feature with a short id and no --index prints the bundled index's page, from any directory", async () => {
  const index = NeuronIndex.open(join(INDEXES, "blocks.2.hook_resid_pre"));
  const summary = index.featureSummary(7);
  const args = [
    "feature",
    "--model",
    "stories260k",
    "--sae",
    "stories260k/blocks.2.hook_resid_pre",
    "--feature",
    "7",
  ];
  const json = await runCli([...args, "--json"], {}, work);
  assert.equal(json.code, 0, json.stderr);
  const page = JSON.parse(json.stdout);
  assert.equal(page.index.dir, join(INDEXES, "blocks.2.hook_resid_pre"));
  assert.equal(page.index.tokens, summary.tokens);
  assert.equal(page.index.density, summary.density);
  assert.deepEqual(
    page.index.examples.map((e: { value: number }) => e.value),
    summary.examples.map((e) => e.value),
  );
  assert.ok(page.logitEffect.top.length > 0);

  const html = join(work, "f7.html");
  const text = await runCli([...args, "--html", html], {}, work);
  assert.equal(text.code, 0, text.stderr);
  // Density, the top examples (the max token in [[ ]]) and the histogram of the positive tokens.
  assert.match(text.stdout, new RegExp(`density ${(100 * summary.density).toFixed(2)}% of tokens > 0`));
  assert.equal((text.stdout.match(/\[\[/g) ?? []).length, summary.examples.length);
  const positive = Math.round(summary.density * summary.tokens);
  assert.match(text.stdout, new RegExp(`Histogram of activations > 0 \\(${positive} tokens\\)`));
  const rows = [...text.stdout.matchAll(/^ {2}[[(][^)]*\)\s+(\d+)/gm)].map((m) => Number(m[1]));
  assert.equal(
    rows.reduce((a, b) => a + b, 0),
    positive,
  );
  assert.match(text.stdout, /Promotes: /);
  assert.match(readFileSync(html, "utf8"), /SAE feature 7/);

  const bad = await runCli(
    ["feature", "--model", "stories260k", "--sae", "stories260k/blocks.7.hook_resid_pre", "--feature", "7"],
    {},
    work,
  );
  assert.notEqual(bad.code, 0);
  assert.match(bad.stderr, /no bundled SAE of that name.*stories260k\/blocks\.0\.hook_resid_pre/);
});
