import assert from "node:assert/strict";
import { test } from "node:test";
import { activationPatching } from "../../src/patching/activation-patching.ts";
import { answerToken } from "../../src/patching/pairs.ts";
import {
  headSite,
  hookLayout,
  neuronSite,
  planTarget,
  queryHeadPartSite,
  selectElements,
} from "../../src/patching/targets.ts";
import { loadFixtureModel, referenceJson as R } from "../helpers/reference.ts";

const model = loadFixtureModel();
const answers = { answer: R.prompts.answer_token, wrong: R.prompts.wrong_token };

test("a pair of unequal token length is rejected, naming the pair and both lengths", async () => {
  await assert.rejects(
    activationPatching(model, {
      clean: ["We're helping our friend while they", "You're helping"],
      corrupted: ["We are helping our friend while they", "You are not helping"],
      answers,
      target: { kind: "resid_pre" },
    }),
    (err: Error) =>
      /Pair 1/.test(err.message) && /is 4 tokens/.test(err.message) && /is 5 tokens/.test(err.message),
  );
});

test("an answer that is not a single token is rejected, naming the option", () => {
  assert.throws(
    () => answerToken(model, " helping our", "--answer"),
    /--answer: .*2 tokens.*not a single token/,
  );
  assert.equal(answerToken(model, " are", "--wrong"), R.prompts.wrong_token);
});

test("out-of-range layers, positions and indices are rejected clearly", () => {
  assert.throws(
    () => planTarget({ kind: "neurons", layer: 3 }, model.cfg, 8),
    /layer 3 is out of range: use --layer between 0 and 2/,
  );
  assert.throws(
    () => planTarget({ kind: "neurons", layer: 1, pos: 8 }, model.cfg, 8),
    /position 8 .*--pos between 0 and 7/,
  );
  assert.throws(
    () => planTarget({ kind: "custom", hook: "blocks.0.mlp.hook_post", indexSets: [[[1]]] }, model.cfg, 8),
    /has 1 axes.*\[8, 256\]/,
  );
  assert.throws(
    () => planTarget({ kind: "custom", hook: "blocks.0.hook_resid", indexSets: [[[1, null]]] }, model.cfg, 8),
    /Did you mean/,
  );
});

test("negative indices are refused wherever the library takes one (no counting from the end)", async () => {
  const cfg = model.cfg;
  const cases: [string, () => unknown, RegExp][] = [
    ["neurons --layer", () => planTarget({ kind: "neurons", layer: -1 }, cfg, 8), /layer -1 is out of range/],
    ["neurons --pos", () => planTarget({ kind: "neurons", layer: 0, pos: -1 }, cfg, 8), /position -1/],
    [
      "custom selector",
      () => planTarget({ kind: "custom", hook: "blocks.0.mlp.hook_post", indexSets: [[[-1, 3]]] }, cfg, 8),
      /Index -1 on axis 0 .*negative indices are not supported/,
    ],
    [
      "sites selector",
      () =>
        planTarget(
          { kind: "sites", sites: [{ hook: "blocks.1.attn.hook_z", selectors: [[null, -2, null]] }] },
          cfg,
          8,
        ),
      /Index -2 on axis 1 .*negative/,
    ],
    ["headSite", () => headSite({ layer: 0, head: -1, component: "pattern" }), /head -1 is not an index/],
    ["headSite pos", () => headSite({ layer: 0, head: 1, component: "z", pos: -3 }), /pos -3/],
    ["neuronSite", () => neuronSite({ layer: 1, neuron: -5 }), /neuron -5 is not an index/],
    [
      "queryHeadPartSite",
      () => queryHeadPartSite(cfg, { layer: 0, head: -1, component: "k" }),
      /head -1 is not an index/,
    ],
    [
      "selectElements",
      () => selectElements([[0, -1, null]], hookLayout("blocks.1.attn.hook_pattern", cfg, 3)),
      /negative or fractional/,
    ],
  ];
  for (const [what, run, message] of cases) assert.throws(run, message, what);
  await assert.rejects(
    activationPatching(model, {
      clean: R.prompts.clean,
      corrupted: R.prompts.corrupted,
      answers,
      target: { kind: "neurons", layer: 1, pos: -1 },
    }),
    /position -1 is out of range: use --pos between 0/,
  );
  // The same calls with the index counted from 0 are accepted (the refusals above are about the sign).
  assert.equal(planTarget({ kind: "neurons", layer: 2, pos: 7 }, cfg, 8).sites.length, cfg.dMlp);
  assert.deepEqual(headSite({ layer: 0, head: 3, component: "pattern" }).selectors, [[3, null, null]]);
});

test("selectors expand to the right elements and drop a shorter prompt's padding positions", () => {
  const layout = hookLayout("blocks.1.attn.hook_pattern", model.cfg, 3); // [H=4, 3, 3]
  const { offsets, positions } = selectElements(
    [
      [2, null, 1],
      [0, 5, null],
    ],
    layout,
  );
  assert.deepEqual([...offsets], [2 * 9 + 0 * 3 + 1, 2 * 9 + 1 * 3 + 1, 2 * 9 + 2 * 3 + 1]);
  assert.deepEqual([...positions], [0, 1, 2]);
});

test("an aborted sweep stops at the next chunk with PatchAbortedError (what Ctrl-C triggers)", async () => {
  const stop = new AbortController();
  const seen: number[] = [];
  await assert.rejects(
    activationPatching(model, {
      clean: R.prompts.clean,
      corrupted: R.prompts.corrupted,
      answers,
      target: { kind: "neurons", layer: 0 },
      chunkSize: 16,
      signal: stop.signal,
      onProgress: (done, total) => {
        seen.push(done);
        if (done > 0 && done < total) stop.abort();
      },
    }),
    { name: "PatchAbortedError" },
  );
  // It stopped after the first chunk, far from the 2 x 256 patches of the whole sweep.
  assert.ok(seen.length >= 1 && Math.max(...seen) <= 32, `progress seen: ${seen.join(",")}`);
});
