import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";
import { BOS_TOKEN, gpt2Tokenizer } from "../../src/tokenizer/tokenizer.ts";
import { FIXTURE_DIR } from "../helpers/fixture.ts";

const ref = JSON.parse(readFileSync(`${FIXTURE_DIR}/reference.json`, "utf8"));
const tok = gpt2Tokenizer();

test("toTokens matches the reference tokenization, BOS included", () => {
  assert.deepEqual(
    ref.prompts.clean.map((p: string) => tok.toTokens(p)),
    ref.prompts.clean_tokens,
  );
  assert.deepEqual(
    ref.prompts.corrupted.map((p: string) => tok.toTokens(p)),
    ref.prompts.corrupted_tokens,
  );
  assert.deepEqual(tok.toTokens("We're", { prependBos: false }), ref.prompts.clean_tokens[0].slice(1, 3));
});

test("toSingleToken finds answer tokens and rejects multi-token text", () => {
  assert.equal(tok.toSingleToken(ref.prompts.answer), ref.prompts.answer_token);
  assert.equal(tok.toSingleToken(ref.prompts.wrong), ref.prompts.wrong_token);
  assert.throws(() => tok.toSingleToken(" helping out"), /2 tokens.*not a single token/);
  assert.throws(() => tok.toSingleToken(""), /0 tokens/);
});

test("toStrTokens decodes each token alone and round-trips the text", () => {
  const text = "We're helping our friend while they";
  const strs = tok.toStrTokens(text);
  assert.equal(strs[0], "<|endoftext|>");
  assert.equal(strs.slice(1).join(""), text);
  assert.equal(strs[2], "'re");
  assert.equal(tok.decode(tok.toTokens(text, { prependBos: false })), text);
});

test("bad token ids are clear errors", () => {
  assert.throws(() => tok.toStrTokens([1, 50257]), /Bad token id 50257/);
  assert.throws(() => tok.decode([-1]), /Bad token id -1/);
  assert.equal(tok.toTokensBatch(["a", "a b"]).lengths.join(), "2,3");
  assert.equal(tok.toTokens("<|endoftext|>", { prependBos: false })[0], BOS_TOKEN);
});
