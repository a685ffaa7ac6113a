/**
 * Issue 28 point 2: a group states how many distinct texts its templates make, since its intervals measure
 * template variety. The count the report states is the number of distinct texts the generator really makes.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { pronounsSpec } from "../../src/studies/pronouns/spec.ts";

test("pronouns: each group's stated template count is the number of distinct texts its generator makes", () => {
  for (const g of pronounsSpec.groups) {
    const stated = pronounsSpec.templateCount?.(g);
    // Asked for far more than it can make, the generator gives every distinct text once.
    const pairs = pronounsSpec.generate([g], () => 5000, 3);
    const texts = new Set(pairs.map((p) => p.clean));
    assert.equal(stated, texts.size, g.name);
    assert.equal(pairs.length, texts.size, `${g.name}: no text twice`);
    // More templates than a run's 24 prompts, so another seed draws other texts.
    assert.ok(texts.size > 24, `${g.name}: ${texts.size} texts`);
  }
});
