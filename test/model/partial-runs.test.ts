import assert from "node:assert/strict";
import { test } from "node:test";
import { HookDispatcher } from "../../src/model/hooks.ts";
import { loadFixtureModel, maxAbsDiff, referenceJson } from "../helpers/reference.ts";

const model = loadFixtureModel();
const engine = model.forwardEngine;
const { nLayers: L, dVocab: V, nHeads: H, dHead: dh } = model.cfg;
const tokens = referenceJson.prompts.clean_tokens; // 2 x 8, unpadded

function lastLogits(batch: number[][]): Float32Array {
  return model.run(batch, { logits: "last" }).data;
}

test("finalPositionOnly computes the same final-position logits with less work", () => {
  const seen: Record<string, readonly number[]> = {};
  const res = engine.forward({
    batch: 2,
    pos: 8,
    tokens: Int32Array.from(tokens.flat()),
    hooks: new HookDispatcher(model.cfg, [
      [
        (n) => n.startsWith(`blocks.${L - 1}.`),
        (act, ctx) => {
          seen[ctx.name] = act.shape;
        },
      ],
    ]),
    logits: "all",
    finalPositionOnly: true,
  });
  assert.deepEqual(res.logits!.shape, [2, 1, V]);
  assert.ok(maxAbsDiff(res.logits!.data, lastLogits(tokens)) < 1e-5);
  // Keys/values at every position, the query side at the final one only.
  assert.deepEqual(seen[`blocks.${L - 1}.attn.hook_k`], [2, 8, H, dh]);
  assert.deepEqual(seen[`blocks.${L - 1}.attn.hook_pattern`], [2, H, 1, 8]);
  assert.deepEqual(seen[`blocks.${L - 1}.mlp.hook_post`], [2, 1, model.cfg.dMlp]);
});

test("continuing from shared cached keys/values equals the full run (the fast-patching path)", () => {
  // Run the first 5 positions of prompt 0 once, then the last 3 positions of both prompts' copies against it.
  const prefix = engine.forward({
    batch: 1,
    pos: 5,
    tokens: Int32Array.from(tokens[0].slice(0, 5)),
    hooks: new HookDispatcher(model.cfg),
    logits: "none",
    keepKV: true,
  });
  const past = prefix.presentKV!.map((kv) => ({ ...kv, shared: true }));
  const copies = 3;
  const rest = Int32Array.from(Array.from({ length: copies }, () => tokens[0].slice(5)).flat());
  for (const finalPositionOnly of [false, true]) {
    const res = engine.forward({
      batch: copies,
      pos: 3,
      pastLen: 5,
      past,
      tokens: rest,
      hooks: new HookDispatcher(model.cfg),
      logits: "last",
      finalPositionOnly,
    });
    const expected = lastLogits([tokens[0]]);
    for (let c = 0; c < copies; c++)
      assert.ok(maxAbsDiff(res.logits!.data.subarray(c * V, (c + 1) * V), expected) < 1e-5);
  }
  assert.throws(
    () =>
      engine.forward({
        batch: 1,
        pos: 3,
        pastLen: 5,
        tokens: rest.subarray(0, 3),
        hooks: new HookDispatcher(model.cfg),
        logits: "last",
      }),
    /no cached keys\/values/,
  );
});

test("finalPositionOnly refuses padded batches", () => {
  assert.throws(
    () =>
      engine.forward({
        batch: 2,
        pos: 8,
        tokens: Int32Array.from(tokens.flat()),
        lengths: [8, 6],
        hooks: new HookDispatcher(model.cfg),
        logits: "last",
        finalPositionOnly: true,
      }),
    /unpadded batch/,
  );
});
