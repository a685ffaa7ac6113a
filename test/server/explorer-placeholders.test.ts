/**
 * The explorer's example inputs (placeholders) work on both families' tokenizers: the answer and wrong
 * tokens are one token each, and the clean and corrupted prompts have the same token length, on GPT-2
 * (the tiny fixture) and on Llama (stories260k). Its hint does not name one tokenizer.
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { HookedTransformer } from "../../src/model/hooked-transformer.ts";
import { FIXTURE_DIR, REPO_ROOT } from "../helpers/fixture.ts";

const html = readFileSync(join(REPO_ROOT, "src/server/public/index.html"), "utf8");
function placeholder(id: string): string {
  const m = new RegExp(`id="${id}"[^>]*placeholder="([^"]*)"`).exec(html);
  assert.ok(m, `#${id} has a placeholder`);
  return m[1].replaceAll("&#39;", "'");
}

for (const name of [FIXTURE_DIR, "stories260k"]) {
  test(`the explorer's placeholders are valid inputs for ${name === FIXTURE_DIR ? "GPT-2" : name}`, async () => {
    const model = await HookedTransformer.fromPretrained(name, { backend: "reference" });
    const answer = model.toSingleToken(placeholder("answer"));
    const wrong = model.toSingleToken(placeholder("wrong"));
    assert.notEqual(answer, wrong);
    const clean = model.toTokens(placeholder("clean"));
    const corrupted = model.toTokens(placeholder("corrupted"));
    assert.equal(clean.length, corrupted.length, "patching needs pairs of equal token length");
    assert.notDeepEqual(clean, corrupted);
    assert.ok(model.toTokens(placeholder("prompt")).length > 1);
  });
}

test("the answer/wrong hint names no model family", () => {
  const hint = /<p class="hint">Answer and wrong tokens[^<]*<\/p>/.exec(html);
  assert.ok(hint);
  assert.doesNotMatch(hint[0], /GPT-2|Llama/);
});
