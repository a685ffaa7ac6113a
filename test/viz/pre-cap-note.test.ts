/**
 * Figures of logit attributions say their numbers are pre-cap when the model soft-caps its logits (issue
 * 31): `attribute --html`, the explorer's attribution panel and the study report's head-DLA figures carry
 * preCapNote's sentence for a soft-capped Gemma 2, and a GPT-2's do not.
 */
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import { preCapNote } from "../../src/analysis/logit-attribution.ts";
import { HookedTransformer } from "../../src/model/hooked-transformer.ts";
import { attributionTask } from "../../src/server/tasks.ts";
import type { StudyResults } from "../../src/studies/results.ts";
import { headDlaStage } from "../../src/studies/stages/head-dla.ts";
import { summarizeGrid, topCells } from "../../src/studies/summaries.ts";
import { loadCheckpoint } from "../../src/weights/checkpoint.ts";
import { runCli } from "../helpers/cli.ts";
import { makeGemma2Checkpoint } from "../helpers/gemma2-variants.ts";

const root = mkdtempSync(join(tmpdir(), "circuitscope-pre-cap-"));
after(() => rmSync(root, { recursive: true, force: true }));

const GPT2 = "test/fixtures/tiny-gpt2";
// Gemma 2 variant 0 soft-caps its final logits at 3.
const gemma = makeGemma2Checkpoint(root, 0);
const NOTE =
  /soft-caps its logits \(cap · tanh\(logit \/ cap\), cap 3\): these are attributions of the pre-cap logit difference/;

test("preCapNote: one sentence naming the cap for a capped model, nothing otherwise", () => {
  assert.match(preCapNote(3), NOTE);
  assert.equal(preCapNote(null), "");
  assert.equal(preCapNote(undefined), "");
});

describe("attribute --html", () => {
  for (const [name, dir, capped] of [
    ["soft-capped Gemma 2", gemma.dir, true],
    ["GPT-2", GPT2, false],
  ] as const) {
    test(`${name}: the page ${capped ? "says" : "does not say"} the attributions are pre-cap`, async () => {
      const html = join(root, `${name.replace(/\W+/g, "-")}.html`);
      const r = await runCli([
        "attribute",
        "--model",
        dir,
        "--backend",
        "reference",
        "--prompt",
        " a b c",
        "--answer",
        " a",
        "--wrong",
        " b",
        "--html",
        html,
      ]);
      assert.equal(r.code, 0, r.stderr);
      const page = readFileSync(html, "utf8");
      // In each of the three figures' captions, and on their value axes.
      assert.equal((page.match(new RegExp(NOTE.source, "g")) ?? []).length, capped ? 3 : 0);
      assert.equal(page.includes("pre-cap logit difference ("), capped);
    });
  }
});

describe("explorer attribution panel", () => {
  for (const [name, dir, capped] of [
    ["soft-capped Gemma 2", gemma.dir, true],
    ["GPT-2", GPT2, false],
  ] as const) {
    test(`${name}: both captions ${capped ? "carry" : "lack"} the note`, () => {
      const model = HookedTransformer.fromCheckpoint(loadCheckpoint(dir));
      try {
        const t = attributionTask(model, { prompt: " a b c", answer: " a", wrong: " b" });
        assert.equal(NOTE.test(t.captions.perLayer ?? ""), capped);
        assert.equal(NOTE.test(t.captions.heads), capped);
      } finally {
        model.dispose();
      }
    });
  }
});

describe("study report: head DLA figures", () => {
  const rows = ["L0", "L1"];
  const cols = ["H0", "H1"];
  const grid = (shift: number) =>
    summarizeGrid(
      rows,
      cols,
      [0, 1, 2].map((b) => rows.map((_, l) => cols.map((_, h) => shift + b + l - h))),
      { resamples: 50 },
    );
  const diff = grid(1);
  const focus = {
    name: "focus",
    headDla: grid(2),
    headDlaCorrupted: grid(1),
    headDlaDiff: diff,
    topHeads: topCells(diff, 2, (l, h) => `L${l}H${h}`),
  };
  const results = (finalSoftCap: number | null) =>
    ({
      meta: { modelConfig: { nLayers: 2, nHeads: 2, finalSoftCap } },
      focusGroup: "focus",
      focus,
      groups: [focus],
    }) as unknown as StudyResults;
  for (const [name, cap] of [
    ["soft-capped", 3],
    ["uncapped", null],
  ] as const) {
    test(`${name} model: every head-DLA caption ${cap ? "carries" : "lacks"} the note`, () => {
      const captions = headDlaStage.sections(results(cap)).flatMap((s) => s.figures.map((f) => f.caption));
      assert.ok(captions.length >= 2);
      for (const c of captions) assert.equal(NOTE.test(c), cap !== null, c);
    });
  }
});
