/**
 * Harvesting against the model's own cache (one prompt at a time): the rows are positions 1 … n−1 of
 * each text, in order, BOS left out; a token budget cuts the last text; the context cut applies.
 * And the sampled corpus: seeded, reproducible, a prefix of a longer one.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import { sampleStories, storySeed } from "../../src/corpus/sampled-stories.ts";
import { HookedTransformer } from "../../src/model/hooked-transformer.ts";
import { harvestActivations, tokenSequences } from "../../src/sae-train/harvest.ts";
import { REPO_ROOT } from "../helpers/fixture.ts";

const model = await HookedTransformer.fromPretrained(join(REPO_ROOT, "models/stories260k"));
after(() => model.dispose());

const TEXTS = ["Once upon a time there was a cat.", "Lily went to the park with her mom and saw a big dog."];

describe("harvestActivations", () => {
  test("rows are each text's positions 1 … n−1 of the hooks, as the cache holds them", () => {
    const hooks = ["blocks.1.hook_resid_pre", "blocks.3.ln2.hook_normalized", "blocks.3.hook_mlp_out"];
    const seqs = [...tokenSequences(model, TEXTS, 128)];
    assert.ok(
      seqs.every((s) => s[0] === model.tokenizer.bosToken),
      "BOS first",
    );
    const bufs = harvestActivations(model, seqs, { hooks, batchSize: 2 });
    for (const [h, buf] of bufs.entries()) {
      assert.equal(buf.hook, hooks[h]);
      assert.equal(buf.width, 64);
      let row = 0;
      for (const seq of seqs) {
        const { cache } = model.runWithCache([seq], { namesFilter: [hooks[h]] });
        const act = cache.get(hooks[h]);
        for (let p = 1; p < seq.length; p++, row++)
          for (let i = 0; i < 64; i++)
            assert.ok(
              Math.abs(buf.data[row * 64 + i] - act.data[p * 64 + i]) < 1e-5,
              `${hooks[h]} text position ${p}`,
            );
      }
      assert.equal(buf.rows, row, "one row per non-BOS token");
    }
  });

  test("--context cuts each text; a token budget cuts the last text", () => {
    const seqs = [...tokenSequences(model, TEXTS, 5)];
    assert.deepEqual(
      seqs.map((s) => s.length),
      [5, 5],
    );
    const [buf] = harvestActivations(model, tokenSequences(model, TEXTS, 128), {
      hooks: ["blocks.0.hook_resid_pre"],
      maxTokens: seqs.length + 7,
    });
    assert.equal(buf.rows, 9);
  });

  test("an unknown hook is refused with the closest name", () => {
    assert.throws(
      () => harvestActivations(model, tokenSequences(model, TEXTS, 8), { hooks: ["blocks.1.hook_resid_pr"] }),
      /hook_resid_pr.*hook_resid_pre/s,
    );
  });
});

describe("sampleStories", () => {
  test("seeded: the same seed gives the same stories, a longer budget extends them, another seed differs", () => {
    const a = [...sampleStories(model, { tokens: 200, seed: 4 })];
    const b = [...sampleStories(model, { tokens: 400, seed: 4 })];
    const c = [...sampleStories(model, { tokens: 200, seed: 5 })];
    assert.ok(a.reduce((s, x) => s + x.tokens, 0) >= 200);
    assert.deepEqual(
      b.slice(0, a.length).map((s) => s.text),
      a.map((s) => s.text),
    );
    assert.notEqual(c[0].text, a[0].text);
    // Story 1 is what generate() gives from BOS with that story's seed, cut before BOS / end-of-text.
    const bos = model.tokenizer.bosToken;
    const g = model.generate([bos], { maxNewTokens: 511, seed: storySeed(4, 1), stopTokens: [bos] });
    const body = g.newTokens.filter((t) => t !== bos && t !== model.tokenizer.eosToken);
    assert.ok(b.length >= 2);
    assert.equal(b[1].text, model.toString(body).trim());
    assert.equal(b[1].tokens, body.length);
  });
});
