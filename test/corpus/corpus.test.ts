import assert from "node:assert/strict";
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import { corpusContexts } from "../../src/corpus/contexts.ts";
import { normalizeText, splitAtParagraphs } from "../../src/corpus/normalize.ts";
import {
  checkUtf8,
  type DocumentSource,
  emailBody,
  nlpCorpusSource,
  openCorpus,
  sotuSource,
  spamAssassinHamSource,
} from "../../src/corpus/sources.ts";
import { BOS_TOKEN, gpt2Tokenizer } from "../../src/tokenizer/tokenizer.ts";
import { parseShard } from "../../src/util/shard.ts";
import { runCli } from "../helpers/cli.ts";
import { FIXTURE_DIR } from "../helpers/fixture.ts";

const tok = gpt2Tokenizer();
const dir = mkdtempSync(join(tmpdir(), "circuitscope-corpus-"));
after(() => rmSync(dir, { recursive: true, force: true }));

function take<T>(it: Iterable<T>, n: number): T[] {
  const out: T[] = [];
  for (const x of it) {
    out.push(x);
    if (out.length === n) break;
  }
  return out;
}

const inline = (docs: string[]): DocumentSource => ({ name: "inline", documents: () => docs });

describe("text normalisation", () => {
  test("curly apostrophes become ASCII so GPT-2 splits contractions the same way", () => {
    const curly = "I don\u2019t think we\u2019re \u2018there\u2019 \u201Cyet\u201D";
    assert.equal(normalizeText(curly), "I don't think we're 'there' \"yet\"");
    assert.deepEqual(tok.encode(normalizeText("don\u2019t")), tok.encode("don't"));
    assert.notDeepEqual(tok.encode("don\u2019t"), tok.encode("don't"));
  });

  test("NFC composes accents and CRLF becomes LF", () => {
    assert.equal(normalizeText("cafe\u0301\r\nx\ry"), "caf\u00e9\nx\ny");
  });

  test("paragraph chunks tokenize exactly like the whole text", () => {
    const docs = [...take(sotuSource().documents(), 3), ...take(spamAssassinHamSource().documents(), 20)];
    docs.push("a  \n\n  b\n\n\nc.\n \t\n'tis\n\n\n");
    for (const doc of docs) {
      const text = normalizeText(doc);
      const chunks = [...splitAtParagraphs(text)];
      assert.equal(chunks.join(""), text);
      assert.deepEqual(
        chunks.flatMap((c) => tok.encode(c)),
        tok.encode(text),
      );
    }
  });
});

describe("corpus contexts", () => {
  test("pack documents with <|endoftext|> between them into BOS-first contexts", () => {
    const docs = ["Hello world.", "Second doc here, a bit longer than the first one.", "", "Third."];
    const ctxs = [...corpusContexts(inline(docs), { contextLen: 8 })];
    const expected = [
      BOS_TOKEN,
      ...tok.encode(docs[0]),
      BOS_TOKEN,
      ...tok.encode(docs[1]),
      BOS_TOKEN,
      ...tok.encode(docs[3]),
    ];
    // Rebuild the stream: every context starts with BOS; a separator at a context start is the BOS itself.
    const flat = ctxs.flatMap((c) => c.tokens);
    assert.ok(ctxs.every((c) => c.tokens[0] === BOS_TOKEN));
    assert.ok(ctxs.slice(0, -1).every((c) => c.tokens.length === 8));
    assert.deepEqual(
      ctxs.map((c) => c.id),
      ctxs.map((_, i) => i),
    );
    assert.deepEqual(
      flat.filter((t) => t !== BOS_TOKEN),
      expected.filter((t) => t !== BOS_TOKEN),
    );
  });

  test("shards are disjoint, cover the corpus, and keep global ids; maxTokens bounds the prefix", () => {
    const src = nlpCorpusSource();
    const opts = { contextLen: 32, maxTokens: 32 * 40 };
    const all = [...corpusContexts(src, opts)];
    assert.equal(all.length, 40);
    assert.ok(all.reduce((a, c) => a + c.tokens.length, 0) <= opts.maxTokens);
    const shards = [0, 1, 2].map((index) => [
      ...corpusContexts(src, { ...opts, shard: { index, count: 3 } }),
    ]);
    const merged = shards.flat().sort((a, b) => a.id - b.id);
    assert.deepEqual(merged, all);
    const resumed = [...corpusContexts(src, { ...opts, startContext: 17 })];
    assert.deepEqual(resumed, all.slice(17));
    assert.deepEqual(parseShard("2/5"), { index: 2, count: 5 });
    assert.throws(() => parseShard("5/5"), /0 <= i < n/);
  });
});

describe("corpus sources", () => {
  test("JSONL reads the configured field and names the fix for a missing one", () => {
    const path = join(dir, "docs.jsonl");
    writeFileSync(path, '{"body":"first"}\n\n{"body":"second \\u2019"}\n');
    assert.deepEqual([...openCorpus(path, { textField: "body" }).documents()], ["first", "second \u2019"]);
    assert.throws(() => [...openCorpus(path).documents()], /no string field "text".*--text-field/);
  });

  test("text files and directories of .txt files, in name order", () => {
    const sub = join(dir, "texts");
    rmSync(sub, { recursive: true, force: true });
    writeFileSync(join(dir, "one.txt"), "alpha");
    assert.deepEqual([...openCorpus(join(dir, "one.txt")).documents()], ["alpha"]);
    mkdirSync(sub);
    writeFileSync(join(sub, "b.txt"), "bee");
    writeFileSync(join(sub, "a.txt"), "ay");
    writeFileSync(join(sub, "c.md"), "skip");
    assert.deepEqual([...openCorpus(sub).documents()], ["ay", "bee"]);
    assert.throws(() => openCorpus(join(dir, "missing")), /not a built-in corpus/);
  });

  test("a file that is not UTF-8 is refused when the corpus is opened, naming the file and line", async () => {
    const latin1 = Buffer.concat([
      Buffer.from("fine\nstill fine\n"),
      Buffer.from([0x63, 0x61, 0x66, 0xe9]),
      Buffer.from("\n"),
    ]);
    const bad = join(dir, "latin1.txt");
    writeFileSync(bad, latin1);
    assert.throws(() => openCorpus(bad), /latin1\.txt:3 is not UTF-8 text.*iconv/);
    const jsonl = join(dir, "latin1.jsonl");
    writeFileSync(
      jsonl,
      Buffer.concat([Buffer.from('{"text":"ok"}\n{"text":"caf'), Buffer.from([0xe9]), Buffer.from('"}\n')]),
    );
    assert.throws(() => openCorpus(jsonl), /latin1\.jsonl:2 is not UTF-8/);
    const mixed = join(dir, "mixed");
    mkdirSync(mixed, { recursive: true });
    writeFileSync(join(mixed, "a.txt"), "ok");
    writeFileSync(join(mixed, "b.txt"), latin1);
    assert.throws(() => openCorpus(mixed), /b\.txt:3 is not UTF-8/);
    // Multi-byte characters cut by the read blocks are fine; a bad byte is found in any block.
    const good = join(dir, "good.txt");
    writeFileSync(good, "héllo wörld ✓\n€ and 𝄞\n".repeat(20));
    for (const block of [1, 2, 3, 5, 64]) checkUtf8(good, block);
    for (const block of [1, 3, 7]) assert.throws(() => checkUtf8(bad, block), /:3 is not UTF-8/);
    // The CLI stops before loading a model, and writes nothing.
    const out = join(dir, "index-out");
    const r = await runCli(["index", "--model", FIXTURE_DIR, "--corpus", bad, "--out", out]);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /latin1\.txt:3 is not UTF-8/);
    assert.equal(existsSync(out), false);
  });

  test("built-in corpora read offline from their packages", () => {
    const sentences = take(nlpCorpusSource().documents(), 1001);
    assert.equal(sentences.length, 1001);
    assert.ok(sentences.every((s) => typeof s === "string" && s.length > 0));
    const speeches = take(sotuSource().documents(), 2);
    assert.match(speeches[0], /^Fellow-Citizens of the Senate/);
    const ham = take(spamAssassinHamSource().documents(), 5);
    assert.ok(
      ham.every((b) => !/^Return-Path:/m.test(b.slice(0, 200))),
      "headers are dropped",
    );
    assert.equal(emailBody("From: a\nSubject: b\n\nHello\n\nthere"), "Hello\n\nthere");
  });
});
