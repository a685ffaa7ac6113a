/**
 * What a result names: positions only by tokens that hold for every prompt of the batch (issue 28.5), and
 * head_all's k/v cells of query heads that share one key/value head as that one head (issue 28.6).
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { HookedTransformer } from "../../src/model/hooked-transformer.ts";
import { activationPatching } from "../../src/patching/activation-patching.ts";
import { largestDisagreements } from "../../src/patching/attribution-compare.ts";
import { cellLabel, resultJson } from "../../src/patching/result-format.ts";
import { patchFigures } from "../../src/viz/presets/patch-figures.ts";
import { loadFixtureModel, referenceJson as R } from "../helpers/reference.ts";

const model = await HookedTransformer.fromPretrained("stories260k");
const SHE = 358;
const HE = 281;
const answers = { answer: SHE, wrong: HE };
const LILY = "Lily went home. Then";
const TIM = "Tim went home. Then";
const LONG_LILY = "Once upon a time, Lily went home. Then";
const LONG_TIM = "Once upon a time, Tim went home. Then";

test("one pair: the position axis is named by that pair's clean tokens", async () => {
  const r = await activationPatching(model, {
    clean: [LILY],
    corrupted: [TIM],
    answers,
    target: { kind: "resid_pre" },
  });
  assert.deepEqual(r.labels[1], model.toStrTokens(LILY));
});

test("pairs of one length: a position where the prompts' tokens differ is named by all of them, never by one prompt's", async () => {
  const r = await activationPatching(model, {
    clean: [LILY, TIM],
    corrupted: [TIM, LILY],
    answers,
    target: { kind: "resid_pre" },
  });
  const [a, b] = [model.toStrTokens(LILY), model.toStrTokens(TIM)];
  const labels = r.labels[1]!;
  assert.equal(labels.length, a.length);
  let differing = 0;
  for (let p = 0; p < a.length; p++) {
    if (a[p] === b[p]) assert.equal(labels[p], a[p], `pos ${p}`);
    else {
      differing++;
      assert.equal(labels[p], `${a[p]}|${b[p]}`, `pos ${p}`);
    }
  }
  assert.ok(differing > 0, "the two clean prompts differ somewhere");
});

test("pairs of different lengths: positions keep plain indices, no prompt's tokens label them", async () => {
  const r = await activationPatching(model, {
    clean: [LONG_LILY, LILY],
    corrupted: [LONG_TIM, TIM],
    answers,
    target: { kind: "resid_pre" },
  });
  assert.equal(r.labels[1], null);
  assert.equal(r.shape[1], model.toTokens(LONG_LILY).length);
  for (const i of [1, 6, r.values.length - 1]) assert.match(cellLabel(r, i), /^L\d+, pos \d+$/);
});

test("head_all on a grouped-query model: the k/v cells of query heads sharing a key/value head are one named effect", async () => {
  const r = await activationPatching(model, {
    clean: [LILY],
    corrupted: [TIM],
    answers,
    target: { kind: "head_all" },
  });
  const { nHeads: H, nKvHeads, nLayers: L } = model.cfg;
  assert.equal(r.kvGroupSize, H / nKvHeads);
  const cell = (c: number, l: number, h: number) => (c * L + l) * H + h;
  for (let c = 0; c < 5; c++)
    for (let l = 0; l < L; l++)
      for (let h = 0; h < H; h += 2) {
        const [one, other] = [cellLabel(r, cell(c, l, h)), cellLabel(r, cell(c, l, h + 1))];
        if (c === 2 || c === 3) {
          assert.equal(one, other, `${one}: query heads ${h} and ${h + 1} read one key/value head`);
          assert.equal(r.values[cell(c, l, h)], r.values[cell(c, l, h + 1)]);
        } else assert.notEqual(one, other);
      }
  assert.equal(cellLabel(r, cell(3, 4, 3)), "v, L4, KV1 (H2+H3)");
  // An estimate off by the most on every k/v cell: the disagreements list each key/value head once.
  const kvCell = (i: number) => Math.floor(i / (L * H)) === 2 || Math.floor(i / (L * H)) === 3;
  const estimate = { ...r, values: r.values.map((v, i) => v + (kvCell(i) ? 10 + i / 1000 : 0)) };
  const worst = largestDisagreements(estimate, r, 6);
  assert.equal(worst.length, 6);
  assert.equal(new Set(worst.map((w) => w.label)).size, 6, worst.map((w) => w.label).join("; "));
  for (const w of worst) assert.match(w.label, /^[kv], L\d, KV\d \(H\d\+H\d\)$/);
  assert.match(
    patchFigures(r)[0].caption ?? "",
    /each group of 2 query heads \(H0\+H1, H2\+H3, …\) reads one key\/value head/,
  );
  assert.equal(cellLabel(r, cell(0, 4, 3)), "z, L4, H3");
  assert.deepEqual((resultJson(r).sharedKvHeads as { groups: number[][] }).groups, [
    [0, 1],
    [2, 3],
    [4, 5],
    [6, 7],
  ]);
});

test("head_all without grouped-query attention: one key/value head per query head, nothing shared", async () => {
  const gpt2 = loadFixtureModel();
  const r = await activationPatching(gpt2, {
    clean: R.prompts.clean,
    corrupted: R.prompts.corrupted,
    answers: { answer: R.prompts.answer_token, wrong: R.prompts.wrong_token },
    target: { kind: "head_all" },
  });
  assert.equal(r.kvGroupSize, undefined);
  assert.equal("sharedKvHeads" in resultJson(r), false);
  assert.doesNotMatch(patchFigures(r)[0].caption ?? "", /key\/value head/);
  assert.equal(cellLabel(r, (2 * gpt2.cfg.nLayers + 1) * gpt2.cfg.nHeads + 1), "k, L1, H1");
});
