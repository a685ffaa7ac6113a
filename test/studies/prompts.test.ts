import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { allGroups, type ContractionGroup, FOCUS_GROUP } from "../../src/studies/contractions/groups.ts";
import { contractionsSpec } from "../../src/studies/contractions/spec.ts";
import { generatePrompts, positionRoles } from "../../src/studies/contractions/templates.ts";
import { byGroup, type PromptPair, parsePromptFile, validatePairs } from "../../src/studies/prompts.ts";
import { selectGroups as select } from "../../src/studies/spec.ts";
import { gpt2Tokenizer } from "../../src/tokenizer/tokenizer.ts";

const tok = gpt2Tokenizer();
const selectGroups = (names: string[]) => select(contractionsSpec, names) as ContractionGroup[];

describe("contraction groups", () => {
  it("use contractions and full forms that are single GPT-2 tokens", () => {
    for (const g of allGroups()) {
      for (const t of [
        g.form.contraction,
        g.form.full,
        g.final.answer,
        g.final.wrong,
        ` ${g.final.pronoun}`,
      ]) {
        assert.equal(tok.encode(t).length, 1, `${JSON.stringify(t)} in ${g.name}`);
      }
      // Subject + contraction and subject + full form must tokenize to the same count.
      for (const s of g.form.subjects) {
        assert.equal(
          tok.encode(s + g.form.contraction).length,
          tok.encode(s + g.form.full).length,
          `${s} ${g.name}`,
        );
      }
    }
  });

  it("select by name, and name unknown groups in the error", () => {
    assert.equal(selectGroups([FOCUS_GROUP])[0].final.answer, "'re");
    assert.throws(() => selectGroups(["'re/xyz"]), /Unknown group.*'re\/they/);
  });
});

describe("generated prompts", () => {
  const groups = allGroups();
  const pairs = generatePrompts(groups, 12, 7);

  it("are reproducible from the seed and change with it", () => {
    assert.deepEqual(generatePrompts(groups, 12, 7), pairs);
    assert.notDeepEqual(generatePrompts(groups, 12, 8), pairs);
  });

  it("give each group exactly perGroup distinct prompts whose first k do not depend on perGroup or other groups", () => {
    const g = byGroup(pairs);
    assert.equal(g.size, groups.length);
    for (const [, list] of g) {
      assert.equal(list.length, 12);
      assert.equal(new Set(list.map((p) => p.clean)).size, 12);
    }
    const alone = generatePrompts(selectGroups(["'s/it"]), 5, 7);
    assert.deepEqual(alone, g.get("'s/it")!.slice(0, 5));
  });

  it("all pass validation: single-token answers, equal lengths, final token is the pronoun, one differing token", () => {
    const { kept, dropped } = validatePairs(pairs, tok);
    assert.deepEqual(dropped, []);
    assert.equal(kept.length, pairs.length);
    for (const p of kept) {
      assert.equal(p.cleanTokens.length, p.corruptedTokens.length);
      assert.equal(tok.decode([p.cleanTokens.at(-1)!]), p.finalToken);
      assert.deepEqual(p.diffPositions, [2], p.clean); // [BOS][Subject][contraction]
      // Every prompt of a group has the template's positions, so per-position results align across prompts.
      assert.equal(p.cleanTokens.length, positionRoles(selectGroups([p.group])[0]).length);
      assert.equal(
        tok.decode([p.cleanTokens[p.roles!.indexOf("connective")]]).trim(),
        p.clean.split(" ").at(-2),
      );
      assert.equal(tok.decode([p.answerToken]), p.answer);
      assert.equal(tok.decode([p.wrongToken]), p.wrong);
      // The corrupted prompt uses the full form where the clean one has the contraction.
      const g = selectGroups([p.group])[0];
      assert.equal(tok.decode([p.cleanTokens[2]]), g.form.contraction);
      assert.equal(tok.decode([p.corruptedTokens[2]]), g.form.full);
      // Answer follows the final pronoun's person: 're for they/we/you, 's for he/she/it.
      assert.equal(p.answer, [" they", " we", " you"].includes(p.finalToken!) ? "'re" : "'s");
    }
  });
});

describe("validation drops bad pairs with a reason", () => {
  const good: PromptPair = {
    clean: "We're helping our friend while they",
    corrupted: "We are helping our friend while they",
    answer: "'re",
    wrong: " are",
    group: "'re/they",
    finalToken: " they",
  };
  const cases: [Partial<PromptPair>, RegExp][] = [
    [{ answer: " contractions" }, /answer.*2 tokens/],
    [{ wrong: "'re" }, /same token/],
    [{ corrupted: "We are really helping our friend while they" }, /same length/],
    [{ corrupted: good.clean }, /same tokens/],
    [
      { clean: "We're helping our friend while he", corrupted: "We are helping our friend while he" },
      /not " they"/,
    ],
    [{ corrupted: "We are helping our friend while you" }, /end with different tokens/],
    [{ roles: ["<BOS>", "subject"] }, /template has 2 positions/],
  ];
  for (const [change, reason] of cases) {
    it(`${JSON.stringify(change)} → ${reason}`, () => {
      const { kept, dropped } = validatePairs([good, { ...good, group: "other", ...change }], tok);
      assert.equal(kept.length, 1);
      assert.equal(dropped.length, 1);
      assert.match(dropped[0].reason, reason);
    });
  }

  it("drops duplicates and over-long prompts", () => {
    const r = validatePairs([good, good], tok);
    assert.equal(r.kept.length, 1);
    assert.match(r.dropped[0].reason, /duplicate/);
    const long = validatePairs([good], tok, { maxTokens: 5 });
    assert.match(long.dropped[0].reason, /exceeds.*context of 5/);
  });
});

describe("prompt files", () => {
  const a = {
    clean: "X're a while they",
    corrupted: "X are a while they",
    answer: "'re",
    wrong: " are",
    group: "g",
  };
  it("parse JSON arrays and JSONL alike", () => {
    const fromJson = parsePromptFile(JSON.stringify([a, { ...a, group: "h" }]));
    const fromJsonl = parsePromptFile(`${JSON.stringify(a)}\n\n${JSON.stringify({ ...a, group: "h" })}\n`);
    assert.deepEqual(fromJson, fromJsonl);
    assert.equal(fromJson[1].group, "h");
  });

  it("name the line and the missing field", () => {
    assert.throws(
      () => parsePromptFile(`${JSON.stringify(a)}\n${JSON.stringify({ ...a, wrong: undefined })}`, "p.jsonl"),
      /p\.jsonl line 2: field "wrong"/,
    );
    assert.throws(() => parsePromptFile("{not json", "p.jsonl"), /p\.jsonl line 1 is not valid JSON/);
  });
});
