/** One way to write a token (issue #17 point 9): raw pieces of either tokenizer family, bytes, spaces. */
import assert from "node:assert/strict";
import { test } from "node:test";
import { gpt2Tokenizer } from "../../src/tokenizer/tokenizer.ts";
import { formatToken, pairPositionLabels } from "../../src/viz/index.ts";

test("formatToken: a leading space is · whichever tokenizer wrote it (raw space, GPT-2 Ġ, SentencePiece ▁)", () => {
  for (const t of [" the", "Ġthe", "▁the"]) assert.equal(formatToken(t), "·the", t);
  assert.equal(formatToken("ĊĊ"), "↵↵", "byte-level newlines");
});

test("formatToken: byte pieces are <0xNN> escapes, never an empty string", () => {
  assert.equal(formatToken("<0xE2>"), "<0xE2>", "SentencePiece byte fallback");
  assert.equal(formatToken("<0x20>"), "·", "a byte that is a whole character is that character");
  assert.equal(formatToken("\u0001"), "<0x01>");
  assert.equal(formatToken(""), "∅");
  // Decoded text that merely uses characters of GPT-2's byte table stays as it is.
  assert.equal(formatToken("łódź"), "łódź");
  assert.equal(formatToken(" naïve"), "·naïve");
});

test('GPT-2 string tokens of a split character are byte escapes, not "" (and do not leak into the next)', () => {
  const tok = gpt2Tokenizer();
  const ids = tok.encode(" 🤗 ok");
  const strs = tok.toStrTokens(ids);
  assert.ok(!strs.includes(""), JSON.stringify(strs));
  assert.ok(
    strs.every((s) => !s.includes("🤗")),
    "no token on its own is the whole emoji",
  );
  // Together the pieces are exactly the emoji's four UTF-8 bytes (F0 9F A4 97), in order.
  const bytes = strs
    .join("")
    .match(/<0x([0-9A-F]{2})>/g)
    ?.map((b) => b.slice(3, 5));
  assert.deepEqual(bytes, ["F0", "9F", "A4", "97"]);
  assert.ok(strs.map(formatToken).every((s) => s.length > 0));
});

test("pairPositionLabels name both tokens where clean and corrupted differ", () => {
  const labels = pairPositionLabels(
    ["<|endoftext|>", "We", "'re", " here"],
    ["<|endoftext|>", "We", " are", " here"],
  );
  assert.deepEqual(labels, ["0: <|endoftext|>", "1: We", "2: 're / ·are", "3: ·here"]);
});
