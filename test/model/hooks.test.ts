import assert from "node:assert/strict";
import { test } from "node:test";
import { Tensor } from "../../src/tensor/tensor.ts";
import { loadFixtureModel, maxAbsDiff, referenceJson } from "../helpers/reference.ts";

const model = loadFixtureModel();
const { nLayers, dModel: D, nHeads: H, dVocab: V } = model.cfg;
const tokens = referenceJson.prompts.clean_tokens;

/** LayerNorm without affine weights, by hand in float64: normalised rows and each row's scale. */
function normalizeRows(x: Float32Array, rows: number, width: number, eps: number) {
  const y = new Float32Array(x.length);
  const scale = new Float32Array(rows);
  for (let r = 0; r < rows; r++) {
    const row = Array.from(x.subarray(r * width, (r + 1) * width));
    const mean = row.reduce((a, v) => a + v, 0) / width;
    const s = Math.sqrt(row.reduce((a, v) => a + (v - mean) ** 2, 0) / width + eps);
    scale[r] = s;
    row.forEach((v, i) => {
      y[r * width + i] = (v - mean) / s;
    });
  }
  return { y, scale };
}

test("a replacing hook on ln_final.hook_normalized changes logits exactly as W_U predicts", () => {
  // Replace the final normalised residual by a known vector u at every position: logits must become u @ W_U + b_U.
  const u = Float32Array.from({ length: D }, (_, i) => Math.sin(i + 1));
  const logits = model.run(tokens, {
    fwdHooks: [
      [
        "ln_final.hook_normalized",
        (act) => {
          const out = new Float32Array(act.size);
          for (let o = 0; o < out.length; o += D) out.set(u, o);
          return new Tensor(out, act.shape);
        },
      ],
    ],
  });
  const WU = model.weights.W_U.data;
  const bU = model.weights.b_U.data;
  for (const v of [0, 821, 389, V - 1]) {
    let expected = bU[v];
    for (let d = 0; d < D; d++) expected += u[d] * WU[d * V + v];
    assert.ok(Math.abs(logits.at(1, 5, v) - expected) < 1e-4);
  }
});

test("adding a vector at resid_pre of layer 1 equals restarting at layer 1 from the edited residual", () => {
  const delta = Float32Array.from({ length: D }, (_, i) => 0.3 * Math.cos(i));
  const edited = model.run(tokens, {
    fwdHooks: [
      [
        "blocks.1.hook_resid_pre",
        (act) => {
          for (let o = 0; o < act.size; o += D) for (let d = 0; d < D; d++) act.data[o + d] += delta[d];
        },
      ],
    ],
  });
  const { cache } = model.runWithCache(tokens, { namesFilter: ["blocks.1.hook_resid_pre"] });
  const resid = cache.get("resid_pre", 1).clone();
  for (let o = 0; o < resid.size; o += D) for (let d = 0; d < D; d++) resid.data[o + d] += delta[d];
  const byHand = model.run(resid, { startAtLayer: 1 });
  assert.ok(maxAbsDiff(edited, byHand) < 1e-5);
  assert.ok(maxAbsDiff(edited, model.run(tokens)) > 1e-3, "the edit must matter");
});

test("a uniform attention pattern makes z the running mean of the values", () => {
  const { cache } = model.runWithCache(tokens, {
    fwdHooks: [
      [
        "blocks.0.attn.hook_pattern",
        (act) => {
          const [, , P, T] = act.shape;
          const out = new Float32Array(act.size);
          for (let o = 0; o < out.length; o += T) {
            const i = (o / T) % P;
            for (let j = 0; j <= i; j++) out[o + j] = 1 / (i + 1);
          }
          return new Tensor(out, act.shape);
        },
      ],
    ],
    namesFilter: ["blocks.0.attn.hook_v", "blocks.0.attn.hook_z", "blocks.0.attn.hook_pattern"],
  });
  const v = cache.get("v", 0);
  const z = cache.get("z", 0);
  assert.equal(cache.get("pattern", 0).at(0, 2, 3, 1), 0.25); // the cache stores what the hook returned
  for (const [b, i, h, e] of [
    [0, 0, 0, 0],
    [1, 7, 3, 15],
    [0, 4, 2, 9],
  ]) {
    let mean = 0;
    for (let j = 0; j <= i; j++) mean += v.at(b, j, h, e) / (i + 1);
    assert.ok(Math.abs(z.at(b, i, h, e) - mean) < 1e-5);
  }
});

test("the optional per-head result sums (with b_O) to hook_attn_out, and is off by default", () => {
  const { cache } = model.runWithCache(tokens, { namesFilter: (n) => n.startsWith("blocks.2.") });
  assert.equal(cache.has("blocks.2.attn.hook_result"), true);
  const result = cache.get("result", 2);
  assert.deepEqual(result.shape, [2, 8, H, D]);
  const attnOut = cache.get("attn_out", 2);
  const bO = model.weights.blocks[2].b_O.data;
  const summed = new Float32Array(attnOut.size);
  for (let r = 0; r < 16; r++)
    for (let d = 0; d < D; d++) {
      let s = bO[d];
      for (let h = 0; h < H; h++) s += result.data[(r * H + h) * D + d];
      summed[r * D + d] = s;
    }
  assert.ok(maxAbsDiff(summed, attnOut.data) < 1e-5);
  assert.equal(model.runWithCache(tokens).cache.has("blocks.2.attn.hook_result"), false);
});

test("a hook that throws leaves no hook behind", () => {
  const before = model.run(tokens);
  assert.throws(
    () =>
      model.run(tokens, {
        fwdHooks: [
          ["blocks.0.hook_resid_pre", (act) => act.data.fill(0) && undefined],
          [
            "blocks.1.hook_mlp_out",
            () => {
              throw new Error("boom");
            },
          ],
        ],
      }),
    /boom/,
  );
  assert.equal(maxAbsDiff(model.run(tokens), before), 0);
});

test("hook filters see every matching point in forward order; bad replacements are rejected", () => {
  const seen: string[] = [];
  model.run(tokens, {
    fwdHooks: [[(n) => n.endsWith("hook_resid_pre"), (_a, ctx) => void seen.push(ctx.name)]],
  });
  assert.deepEqual(
    seen,
    Array.from({ length: nLayers }, (_, l) => `blocks.${l}.hook_resid_pre`),
  );
  assert.throws(
    () => model.run(tokens, { fwdHooks: [["blocks.0.hook_resid_pre", () => Tensor.zeros([1, 2, 3])]] }),
    /returned shape \[1, 2, 3\], expected \[2, 8, 64\]/,
  );
});

test("a padded batch gives each prompt the same logits as running it alone", () => {
  const prompts = ["We're helping our friend while they", "Hi", "The quick brown fox jumps"];
  const batch = model.run(prompts);
  prompts.forEach((p, b) => {
    const alone = model.run(p);
    const n = alone.shape[1];
    const rows = batch.data.subarray(b * batch.shape[1] * V, (b * batch.shape[1] + n) * V);
    assert.ok(maxAbsDiff(rows, alone.data) < 1e-5, p);
  });
  const last = model.run(prompts, { logits: "last" });
  const alone = model.run(prompts[1]);
  assert.ok(maxAbsDiff(last.index0(1).data, alone.data.subarray(alone.size - V)) < 1e-5);
});

test("stopAtLayer returns the next block's resid_pre; ln_final scale matches a direct computation", () => {
  const { cache } = model.runWithCache(tokens);
  const stopped = model.runWithCache(tokens, { stopAtLayer: 2, namesFilter: [] });
  assert.equal(stopped.logits, null);
  assert.equal(maxAbsDiff(stopped.residual, cache.get("resid_pre", 2)), 0);
  const final = cache.get(`blocks.${nLayers - 1}.hook_resid_post`);
  const { scale } = normalizeRows(final.data, 16, D, model.cfg.lnEps);
  assert.ok(maxAbsDiff(scale, cache.get("ln_final.hook_scale").data) < 1e-6);
});

test("bad input gets clear errors", () => {
  assert.throws(
    () => model.run(tokens, { fwdHooks: [["blocks.0.hook_resid", () => {}]] }),
    /Unknown hook name "blocks.0.hook_resid". Did you mean "blocks.0.hook_resid_/,
  );
  assert.throws(
    () => model.runWithCache(tokens, { namesFilter: ["blocks.9.hook_resid_pre"] }),
    /layer 9 does not exist/,
  );
  assert.throws(() => model.run("word ".repeat(80)), /is 82 tokens but the model's context is 64 tokens/);
  assert.throws(() => model.run([[50256, 50257]]), /Bad token id 50257/);
  assert.throws(() => model.run([[50256, 1.5]]), /Bad token id 1.5/);
});

test("loss is the mean next-token cross-entropy over real positions", () => {
  const { loss, perToken } = model.loss(["We're helping our friend", "Hi there"]);
  const logits = model.run("Hi there");
  // Independent check for the second prompt: -log softmax at each position.
  const toks = model.toTokens("Hi there");
  for (let p = 0; p + 1 < toks.length; p++) {
    const row = Array.from(logits.data.subarray(p * V, (p + 1) * V));
    const m = Math.max(...row);
    const lse = m + Math.log(row.reduce((a, x) => a + Math.exp(x - m), 0));
    assert.ok(Math.abs(perToken[1][p] - (lse - row[toks[p + 1]])) < 1e-4);
  }
  const all = perToken.flat();
  assert.ok(Math.abs(loss - all.reduce((a, b) => a + b, 0) / all.length) < 1e-9);
  assert.equal(perToken[0].length, model.toTokens("We're helping our friend").length - 1);
});

test("a hook replacing ln1.hook_scale changes the normalised output (TransformerLens semantics)", () => {
  const { cache } = model.runWithCache(tokens, {
    fwdHooks: [
      [
        "blocks.1.ln1.hook_scale",
        (act) =>
          new Tensor(
            act.data.map((x) => 2 * x),
            act.shape,
          ),
      ],
    ],
    namesFilter: ["blocks.1.ln1.hook_normalized", "blocks.1.hook_resid_pre"],
  });
  const resid = cache.get("resid_pre", 1);
  const { y } = normalizeRows(resid.data, 16, D, model.cfg.lnEps);
  // Folded LN has no affine part, so the output is exactly half the normal normalisation.
  assert.ok(
    maxAbsDiff(
      cache.get("blocks.1.ln1.hook_normalized").data,
      y.map((v) => v / 2),
    ) < 1e-6,
  );
});
