/**
 * The `sites` target: sites on different hooks in one sweep give the same per-prompt values as the
 * single-hook targets they come from (fast path), and as the straightforward path; bad sites are refused.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { activationPatching } from "../../src/patching/activation-patching.ts";
import type { PatchSite } from "../../src/patching/targets.ts";
import { loadFixtureModel, referenceJson as R } from "../helpers/reference.ts";

const model = loadFixtureModel();
const base = {
  clean: R.prompts.clean_tokens,
  corrupted: R.prompts.corrupted_tokens,
  answers: { answer: R.prompts.answer_token, wrong: R.prompts.wrong_token },
};
const sites: PatchSite[] = [
  { hook: "blocks.0.hook_attn_out", selectors: [[null, null]] },
  { hook: "blocks.2.mlp.hook_post", selectors: [[null, 17]] },
  { hook: "blocks.1.attn.hook_z", selectors: [[null, 2, null]] },
  { hook: "blocks.1.attn.hook_pattern", selectors: [[3, null, null]] },
  { hook: "blocks.2.hook_resid_pre", selectors: [[2, null]] },
];

test("a sites sweep equals one custom sweep per site, and the straightforward path", async () => {
  const all = await activationPatching(model, { ...base, target: { kind: "sites", sites } });
  assert.deepEqual(all.shape, [sites.length]);
  const slow = await activationPatching(model, {
    ...base,
    target: { kind: "sites", sites },
    method: "straightforward",
  });
  const B = base.clean.length;
  for (const [s, site] of sites.entries()) {
    const one = await activationPatching(model, {
      ...base,
      target: { kind: "custom", hook: site.hook, indexSets: [site.selectors] },
    });
    for (let b = 0; b < B; b++) {
      const v = all.perPrompt.raw[b * sites.length + s];
      assert.ok(Math.abs(v - one.perPrompt.raw[b]) < 1e-4, `${site.hook} prompt ${b}`);
      assert.ok(
        Math.abs(v - slow.perPrompt.raw[b * sites.length + s]) < 1e-4,
        `${site.hook} straightforward`,
      );
    }
  }
  // The sites change the result (otherwise the comparison above would hold trivially).
  assert.ok(all.raw.some((r) => Math.abs(r - all.corrupted) > 1e-3));
});

test("a site on an unknown hook or out of range is refused with the hook named", async () => {
  await assert.rejects(
    activationPatching(model, {
      ...base,
      target: { kind: "sites", sites: [{ hook: "blocks.9.hook_attn_out", selectors: [[null, null]] }] },
    }),
    /blocks\.9/,
  );
  await assert.rejects(
    activationPatching(model, {
      ...base,
      target: { kind: "sites", sites: [{ hook: "blocks.0.mlp.hook_post", selectors: [[null, 99999]] }] },
    }),
    /out of range/,
  );
});
