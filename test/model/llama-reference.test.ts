import assert from "node:assert/strict";
import { join } from "node:path";
import { test } from "node:test";
import { REPO_ROOT } from "../helpers/fixture.ts";
import { referenceDecode, referenceGreedy, referenceInvFreq } from "../helpers/llama-reference.ts";

const STORIES = join(REPO_ROOT, "models/stories260k");

test("the independent float64 Llama reference reproduces llama2.c's greedy story on stories260k", () => {
  // llama2.c's test_all.py pins this continuation of BOS (id 1); 31 steps cover its first two sentences.
  const tokens = referenceGreedy(STORIES, [1], 31);
  assert.equal(
    referenceDecode(STORIES, tokens),
    "Once upon a time, there was a little girl named Lily. She loved to play outside in the park.",
  );
});

test("reference rotary frequencies: Hugging Face's llama3 and linear scaling rules", () => {
  const dh = 64;
  const base = referenceInvFreq({ rope_theta: 500000 }, dh);
  const linear = referenceInvFreq({ rope_theta: 500000, rope_scaling: { type: "linear", factor: 4 } }, dh);
  const llama3 = referenceInvFreq(
    {
      rope_theta: 500000,
      rope_scaling: {
        rope_type: "llama3",
        factor: 32,
        low_freq_factor: 1,
        high_freq_factor: 4,
        original_max_position_embeddings: 8192,
      },
    },
    dh,
  );
  for (let i = 0; i < dh / 2; i++) {
    assert.ok(Math.abs(linear[i] - base[i] / 4) < 1e-15);
    const wavelen = (2 * Math.PI) / base[i];
    // Wavelengths under 8192/4 keep their frequency; over 8192/1 are slowed 32x; in between, interpolated.
    if (wavelen < 2048) assert.equal(llama3[i], base[i]);
    else if (wavelen > 8192) assert.ok(Math.abs(llama3[i] - base[i] / 32) < 1e-15);
    else assert.ok(llama3[i] < base[i] && llama3[i] > base[i] / 32, `medium frequency ${i}`);
  }
  assert.equal(base[0], 1);
});
