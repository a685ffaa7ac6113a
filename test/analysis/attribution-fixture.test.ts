import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { attributeLogitDiff } from "../../src/analysis/attribute.ts";
import { logitAttrs, logitDiffDirections } from "../../src/analysis/logit-attribution.ts";
import { accumulatedResid, decomposeResid, stackHeadResults } from "../../src/analysis/residual-stack.ts";
import { loadFixtureModel, maxAbsDiff, referenceJson, referenceTensor } from "../helpers/reference.ts";

const ATOL = 1e-4;
const { prompts } = referenceJson;

describe("logit attribution on the fixture model matches the reference", () => {
  const model = loadFixtureModel({ backend: "reference" });
  const answer = model.toSingleToken(prompts.answer);
  const wrong = model.toSingleToken(prompts.wrong);
  const { cache, logits } = model.runWithCache(prompts.clean, { logits: "last" });
  const dirs = logitDiffDirections(model, answer, wrong, prompts.clean.length);

  it("uses the fixture's answer and wrong tokens", () => {
    assert.equal(answer, prompts.answer_token);
    assert.equal(wrong, prompts.wrong_token);
    assert.ok(logits);
  });

  it("accumulated_resid (incl_mid, cached ln_final scale)", () => {
    const rs = accumulatedResid(model, cache, { inclMid: true });
    assert.deepEqual(rs.labels, referenceJson.labels.accumulated_resid);
    const attr = logitAttrs(model, cache, rs, dirs);
    const d = maxAbsDiff(Array.from(attr.mean), referenceTensor("attr.accumulated_resid").data);
    assert.ok(d < ATOL, `max |diff| ${d}`);
  });

  it("accumulated_resid with each entry's own LayerNorm statistics (logit lens)", () => {
    const rs = accumulatedResid(model, cache, { inclMid: true });
    const attr = logitAttrs(model, cache, rs, dirs, { ln: "recompute" });
    const d = maxAbsDiff(Array.from(attr.mean), referenceTensor("attr.accumulated_resid_recomputed_ln").data);
    assert.ok(d < ATOL, `max |diff| ${d}`);
  });

  it("decompose_resid", () => {
    const rs = decomposeResid(model, cache);
    assert.deepEqual(rs.labels, referenceJson.labels.decompose_resid);
    const attr = logitAttrs(model, cache, rs, dirs);
    const d = maxAbsDiff(Array.from(attr.mean), referenceTensor("attr.decompose_resid").data);
    assert.ok(d < ATOL, `max |diff| ${d}`);
  });

  it("stack_head_results [layer, head]", () => {
    const rs = stackHeadResults(model, cache);
    assert.equal(rs.labels[5], "L1H1");
    const attr = logitAttrs(model, cache, rs, dirs);
    const ref = referenceTensor("attr.heads");
    assert.deepEqual(ref.shape, [model.cfg.nLayers, model.cfg.nHeads]);
    const d = maxAbsDiff(Array.from(attr.mean), ref.data);
    assert.ok(d < ATOL, `max |diff| ${d}`);
  });

  it("attributeLogitDiff: logit difference and all three attributions in one pass", () => {
    const r = attributeLogitDiff(model, prompts.clean, answer, wrong);
    assert.ok(Math.abs(r.logitDiff.mean - referenceJson.scalars.clean_logit_diff) < ATOL);
    assert.ok(maxAbsDiff(Array.from(r.heads.mean), referenceTensor("attr.heads").data) < ATOL);
    const lens = attributeLogitDiff(model, prompts.clean, answer, wrong, { logitLens: true });
    assert.ok(
      maxAbsDiff(
        Array.from(lens.accumulated.mean),
        referenceTensor("attr.accumulated_resid_recomputed_ln").data,
      ) < ATOL,
    );
  });
});
