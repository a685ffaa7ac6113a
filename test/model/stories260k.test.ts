/**
 * The engine on the bundled real model (stories260k, a trained Llama): llama2.c's greedy output, its
 * tokenizer's ids, the key/value cache with rotary positions, and raw vs processed logits.
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { HookedTransformer } from "../../src/model/hooked-transformer.ts";
import { HookDispatcher } from "../../src/model/hooks.ts";
import { bundledModelDir } from "../../src/weights/bundled-models.ts";
import { runCli } from "../helpers/cli.ts";
import { maxDiffFromCentred } from "../helpers/logits.ts";

const DIR = bundledModelDir("stories260k")!;

/** llama2.c's `test_all.py` expectation for `run stories260K.bin -z tok512.bin -t 0.0 -n 200`. */
const LLAMA2C_GREEDY_200 =
  "Once upon a time, there was a little girl named Lily. She loved to play outside in the park. One day, she saw a big, red ball. She wanted to play with it, but it was too high.\n" +
  "Lily's mom said, \"Lily, let's go to the park.\" Lily was sad and didn't know what to do. She said, \"I want to play with your ball, but I can't find it.\"\n" +
  "Lily was sad and didn't know what to do. She said, \"I'm sorry, Lily. I didn't know what to do.\"\n" +
  "Lily didn't want to help her mom, so she";

const model = await HookedTransformer.fromPretrained("stories260k", { backend: "reference" });
const raw = await HookedTransformer.fromPretrained("stories260k", {
  backend: "reference",
  processing: false,
});

/**
 * llama2.c's encoder (run.c `encode`), written independently of the tokenizer library: dummy prefix "▁",
 * spaces as "▁", start from single characters (bytes as <0xNN> when a character is not in the vocabulary),
 * then repeatedly merge the adjacent pair whose concatenation has the best score. SentencePiece orders
 * its pieces by score, so the best score is the lowest id.
 */
function llama2cEncode(text: string): number[] {
  const vocab: Record<string, number> = JSON.parse(readFileSync(join(DIR, "tokenizer.json"), "utf8")).model
    .vocab;
  const pieces: string[] = [];
  for (const ch of `▁${text.replaceAll(" ", "▁")}`) {
    if (vocab[ch] !== undefined) pieces.push(ch);
    else
      for (const b of new TextEncoder().encode(ch))
        pieces.push(`<0x${b.toString(16).toUpperCase().padStart(2, "0")}>`);
  }
  for (;;) {
    let best = -1;
    let bestId = Number.POSITIVE_INFINITY;
    for (let i = 0; i + 1 < pieces.length; i++) {
      const id = vocab[pieces[i] + pieces[i + 1]];
      if (id !== undefined && id < bestId) {
        bestId = id;
        best = i;
      }
    }
    if (best < 0) break;
    pieces.splice(best, 2, pieces[best] + pieces[best + 1]);
  }
  return [1, ...pieces.map((p) => vocab[p])];
}

test("greedy generation from BOS prints exactly llama2.c's output (CLI, 200 tokens)", async () => {
  const out = await runCli(["generate", "--model", "stories260k", "-n", "200", "-t", "0", ""]);
  assert.equal(out.code, 0, out.stderr);
  assert.equal(out.stdout, `${LLAMA2C_GREEDY_200}\n`);
  const json = await runCli(["generate", "--model", "stories260k", "-n", "5", "-t", "0", "--json", ""]);
  const parsed = JSON.parse(json.stdout);
  assert.deepEqual(Object.keys(parsed).sort(), ["newTokens", "prompt", "text", "tokens"]);
  assert.equal(parsed.tokens[0], 1);
  assert.equal(parsed.newTokens.length, 5);
  assert.equal(parsed.text, "Once upon a time,");
});

test("tokens equal llama2.c's encoder's (BOS = 1 first), in the library and in predict --json", async () => {
  for (const text of [
    "Once upon a time, there was a little girl.",
    "Tim and Sue played with a ball in the garden!",
    "The café was 😀 fun",
  ]) {
    assert.deepEqual(model.toTokens(text), llama2cEncode(text), text);
  }
  const text = "One day, a big dog ran to the park.";
  const out = await runCli(["predict", "--model", "stories260k", "--json", text]);
  assert.equal(out.code, 0, out.stderr);
  const json = JSON.parse(out.stdout);
  assert.deepEqual(json.tokens, llama2cEncode(text));
  assert.equal(json.strTokens[0], "<s>");
  assert.equal(json.strTokens[1], " One");
});

test('answers given as text: " she" is the word-initial token ▁she (358), not ▁ + ▁she', () => {
  assert.equal(model.toSingleToken(" she"), 358);
  assert.equal(model.tokenizer.toStrTokens([358])[0], " she");
  // Without the space it is the continuation piece, a different token.
  assert.notEqual(model.toSingleToken("he"), model.toSingleToken(" he"));
  assert.throws(() => model.toSingleToken(" elephant"), /is \d+ tokens .*not a single token/);
});

test("token strings show spaces as spaces and bytes as <0xNN>; decode round-trips", () => {
  const text = "Hi 😀";
  const ids = model.toTokens(text);
  const strs = model.toStrTokens(ids);
  assert.deepEqual(strs.slice(-4), ["<0xF0>", "<0x9F>", "<0x98>", "<0x80>"]);
  assert.ok(strs[1].startsWith(" H"), strs[1]);
  assert.equal(model.toString(ids), text);
});

test("the key/value cache keeps rotary positions right: step logits equal the full run's", () => {
  const tokens = model.toTokens("Once upon a time, there was a little girl named Lily.");
  const V = model.cfg.dVocab;
  const full = model.run([tokens]).data;
  const engine = model.forwardEngine;
  const split = 4;
  let step = engine.forward({
    batch: 1,
    pos: split,
    tokens: Int32Array.from(tokens.slice(0, split)),
    hooks: new HookDispatcher(model.cfg),
    logits: "last",
    keepKV: true,
  });
  for (let p = split; p < tokens.length; p++) {
    step = engine.forward({
      batch: 1,
      pos: 1,
      pastLen: p,
      past: step.presentKV!,
      tokens: Int32Array.of(tokens[p]),
      hooks: new HookDispatcher(model.cfg),
      logits: "last",
      keepKV: true,
    });
    const want = full.subarray(p * V, (p + 1) * V);
    let maxDiff = 0;
    for (let i = 0; i < V; i++) maxDiff = Math.max(maxDiff, Math.abs(step.logits!.data[i] - want[i]));
    assert.ok(maxDiff < 1e-4, `position ${p}: max |diff| ${maxDiff}`);
  }
});

test("processed logits = raw logits minus their mean over the vocabulary", () => {
  const prompt = "Lily saw a big red ball in the park.";
  const a = raw.run(prompt).data;
  const b = model.run(prompt).data;
  const V = model.cfg.dVocab;
  const maxDiff = maxDiffFromCentred(a, b, V);
  assert.ok(maxDiff < 1e-4, `max |processed - (raw - mean)| = ${maxDiff}`);
  // Raw logits are not centred (the check above is not trivially true).
  let rawMean = 0;
  for (let i = 0; i < V; i++) rawMean += a[i];
  assert.ok(Math.abs(rawMean / V) > 1e-2);
});

test("hooks follow TransformerLens for Llama: RMSNorm scale, rotary, grouped k/v, gated MLP, no pos_embed", () => {
  const { cache } = model.runWithCache("Once upon a time");
  const { nHeads: H, nKvHeads: Hkv, dHead: dh, dMlp } = model.cfg;
  assert.equal(cache.has("hook_pos_embed"), false);
  assert.deepEqual(cache.get("blocks.0.attn.hook_q").shape, [1, 5, H, dh]);
  assert.deepEqual(cache.get("blocks.0.attn.hook_k").shape, [1, 5, Hkv, dh]);
  assert.deepEqual(cache.get("blocks.0.attn.hook_rot_k").shape, [1, 5, Hkv, dh]);
  assert.deepEqual(cache.get("blocks.0.mlp.hook_pre_linear").shape, [1, 5, dMlp]);
  // hook_scale is the RMS of resid_pre (no centring): sqrt(mean(x^2) + eps).
  const x = cache.get("blocks.2.hook_resid_pre").data;
  const s = cache.get("blocks.2.ln1.hook_scale").data;
  const D = model.cfg.dModel;
  let sq = 0;
  for (let d = 0; d < D; d++) sq += x[3 * D + d] ** 2;
  assert.ok(Math.abs(s[3] - Math.sqrt(sq / D + model.cfg.lnEps)) < 1e-5);
  // post = silu(pre) * pre_linear.
  const pre = cache.get("blocks.1.mlp.hook_pre").data;
  const lin = cache.get("blocks.1.mlp.hook_pre_linear").data;
  const post = cache.get("blocks.1.mlp.hook_post").data;
  for (const i of [0, 17, 400]) {
    const silu = pre[i] / (1 + Math.exp(-pre[i]));
    assert.ok(Math.abs(post[i] - silu * lin[i]) < 1e-5);
  }
  // Position 0 is not rotated (angle 0); later positions are.
  const k = cache.get("blocks.0.attn.hook_k").data;
  const rk = cache.get("blocks.0.attn.hook_rot_k").data;
  for (let i = 0; i < Hkv * dh; i++) assert.equal(rk[i], k[i]);
  assert.notEqual(rk[Hkv * dh + 1], k[Hkv * dh + 1]);
});
