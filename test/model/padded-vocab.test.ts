/**
 * A model whose embedding has more rows than its tokenizer has tokens (Pythia: 50304 rows for 50277 tokens;
 * Qwen2.5 likewise): the extra ids are outputs like any other, so predictions over the whole vocabulary,
 * token labels and decoding must take them; ids past the model's rows stay refused.
 */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { topPredictions } from "../../src/analysis/predictions.ts";
import { HookedTransformer } from "../../src/model/hooked-transformer.ts";
import { loadHfTokenizer } from "../../src/tokenizer/hf-tokenizer.ts";
import { loadCheckpoint, makeRandomCheckpoint } from "../../src/weights/checkpoint.ts";
import { parseHfConfig } from "../../src/weights/families/index.ts";
import { runCli } from "../helpers/cli.ts";
import { NEOX_BASE_CONFIG } from "../helpers/neox-variants.ts";

const dir = mkdtempSync(join(tmpdir(), "circuitscope-padded-vocab-"));
after(() => rmSync(dir, { recursive: true, force: true }));
const ROWS = 520; // the bundled tokenizer (copied into the checkpoint) has 512 tokens
makeRandomCheckpoint(dir, parseHfConfig({ ...NEOX_BASE_CONFIG, vocab_size: ROWS }, "padded"), {
  seed: 3,
  std: 0.2,
});
const model = HookedTransformer.fromCheckpoint(loadCheckpoint(dir), { backend: "reference" });
const own = loadHfTokenizer(dir); // the tokenizer alone, without the model's rows

test("labels: the tokenizer's own tokens unchanged, the padding ids <padding N>, ids past the rows refused", () => {
  assert.equal(own.vocabSize, 512);
  const ids = [1, 403, 358, 511, 512, 519];
  assert.deepEqual(model.toStrTokens(ids), [
    ...own.toStrTokens(ids.slice(0, 4)),
    "<padding 512>",
    "<padding 519>",
  ]);
  assert.throws(
    () => model.toStrTokens([1, ROWS]),
    /Bad token id 520: token ids must be integers in \[0, 520\)/,
  );
  assert.throws(() => own.toStrTokens([512]), /Bad token id 512/);
});

test("decoding leaves padding ids out, as Hugging Face's decode does", () => {
  assert.equal(model.toString([403, 515, 358]), own.decode([403, 358]));
});

test("predictions over every row: each id once, labelled, in logit order", () => {
  const row = model.run([[1, 403, 358, 515]], { logits: "last" }).data;
  assert.equal(row.length, ROWS);
  const top = topPredictions(row, ROWS, model.tokenizer);
  assert.deepEqual(
    top.map((t) => t.token).sort((a, b) => a - b),
    Array.from({ length: ROWS }, (_, i) => i),
  );
  for (const t of top)
    assert.equal(t.str, t.token < 512 ? own.toStrTokens([t.token])[0] : `<padding ${t.token}>`);
  for (let i = 1; i < top.length; i++) assert.ok(top[i - 1].logit >= top[i].logit);
});

test("CLI predict -k over every row runs (it stopped at a padding id before)", async () => {
  const out = await runCli(["predict", "--model", dir, "-k", String(ROWS), "--json", "Once upon a time"]);
  assert.equal(out.code, 0, out.stderr);
  const { top } = JSON.parse(out.stdout) as { top: { token: number; str: string }[] };
  assert.equal(top.length, ROWS);
  assert.ok(top.some((t) => t.str === `<padding ${t.token}>` && t.token >= 512));
});
