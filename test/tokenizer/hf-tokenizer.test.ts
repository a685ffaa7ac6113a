/**
 * Tokenizers read from tokenizer.json: a small byte-level BPE written here (the Llama 3 / SmolLM / Qwen2
 * kind), and the bundled stories260k's SentencePiece-style one.
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { HfTokenizer, loadHfTokenizer } from "../../src/tokenizer/hf-tokenizer.ts";
import { bundledModelDir } from "../../src/weights/bundled-models.ts";

/** GPT-2's printable stand-in for each byte, as its `bytes_to_unicode` defines it. */
function byteChars(): string[] {
  const keep = (b: number) => (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
  let next = 256;
  return Array.from({ length: 256 }, (_, b) => String.fromCodePoint(keep(b) ? b : next++));
}

const BYTES = byteChars();
const vocab: Record<string, number> = {};
BYTES.forEach((c, b) => {
  vocab[c] = b;
});
for (const t of ["he", "Ġs", "Ġshe", "Ġt"]) vocab[t] = Object.keys(vocab).length;
const EOT = Object.keys(vocab).length;
const byteLevel = { type: "ByteLevel", add_prefix_space: false, trim_offsets: true, use_regex: true };
const tokenizerJson = {
  version: "1.0",
  truncation: null,
  padding: null,
  added_tokens: [
    {
      id: EOT,
      content: "<|endoftext|>",
      single_word: false,
      lstrip: false,
      rstrip: false,
      normalized: false,
      special: true,
    },
  ],
  normalizer: null,
  pre_tokenizer: byteLevel,
  post_processor: byteLevel,
  decoder: byteLevel,
  model: {
    type: "BPE",
    dropout: null,
    unk_token: null,
    continuing_subword_prefix: null,
    end_of_word_suffix: null,
    fuse_unk: false,
    byte_fallback: false,
    vocab,
    merges: ["h e", "Ġ s", "Ġs he", "Ġ t"],
  },
};

test("byte-level BPE: Ġ shows as a space, no BOS unless the config asks, answers as continuation", () => {
  const tok = new HfTokenizer(tokenizerJson, { bos_token: null, eos_token: "<|endoftext|>" }, "t.json");
  assert.equal(tok.eosToken, EOT);
  assert.deepEqual(tok.toTokens(" she"), [vocab["Ġshe"]]);
  assert.deepEqual(tok.toTokens("she"), [vocab.s, vocab.he]);
  assert.equal(tok.toSingleToken(" she"), vocab["Ġshe"]);
  assert.deepEqual(tok.toStrTokens([vocab["Ġshe"], vocab.he]), [" she", "he"]);
  assert.throws(() => tok.toSingleToken("she"), /2 tokens \("s", "he"\), not a single token/);
  // é is two bytes: alone, neither is text.
  const ids = tok.encode("é");
  assert.deepEqual(tok.toStrTokens(ids), ["<0xC3>", "<0xA9>"]);
  assert.equal(tok.decode(tok.encode(" she té")), " she té");

  const withBos = new HfTokenizer(
    tokenizerJson,
    { bos_token: "<|endoftext|>", eos_token: "<|endoftext|>", add_bos_token: true },
    "t.json",
  );
  assert.deepEqual(withBos.toTokens(" she"), [EOT, vocab["Ġshe"]]);
  assert.deepEqual(withBos.toTokens(" she", { prependBos: false }), [vocab["Ġshe"]]);
  assert.equal(withBos.toStrTokens([EOT])[0], "<|endoftext|>");
});

test("a bos_token missing from the vocabulary is a clear error", () => {
  assert.throws(
    () => new HfTokenizer(tokenizerJson, { bos_token: "<s>" }, "/m/tokenizer.json"),
    /\/m\/tokenizer.json: bos_token "<s>" is not in the vocabulary/,
  );
});

test("SentencePiece-style (stories260k): BOS from the config, ▁ shown as a space, byte fallback readable", () => {
  const tok = loadHfTokenizer(bundledModelDir("stories260k")!);
  assert.equal(tok.bosToken, 1);
  assert.equal(tok.eosToken, 2);
  assert.deepEqual(tok.toTokens("Once upon"), [1, 403, 407]);
  assert.deepEqual(tok.toStrTokens([1, 403, 358]), ["<s>", " Once", " she"]);
  // Byte-fallback pieces: printable ASCII and newlines read as themselves, other bytes stay <0xNN>.
  assert.deepEqual(tok.toStrTokens([3 + 0x0a, 3 + 0xe2]), ["\n", "<0xE2>"]);
  assert.equal(tok.toSingleToken(" she"), 358);
  assert.equal(tok.decode(tok.toTokens("A dog.\nThe end.")), "A dog.\nThe end.");
});

test("an empty vocabulary is refused at load, naming the file and the fix (not a bad token id at the first prompt)", () => {
  const dir = bundledModelDir("stories260k") as string;
  const json = JSON.parse(readFileSync(join(dir, "tokenizer.json"), "utf8"));
  const config = JSON.parse(readFileSync(join(dir, "tokenizer_config.json"), "utf8"));
  assert.equal(
    new HfTokenizer(json, config, "/m/tokenizer.json").vocabSize,
    512,
    "the file as shipped loads",
  );
  json.model.vocab = {};
  json.model.merges = [];
  assert.throws(
    () => new HfTokenizer(json, config, "/m/tokenizer.json"),
    /^Error: Invalid tokenizer in \/m\/tokenizer\.json: its vocabulary \(model\.vocab\) is empty — copy tokenizer\.json .* again/,
  );
});
