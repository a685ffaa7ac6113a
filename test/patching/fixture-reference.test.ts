import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { join } from "node:path";
import { test } from "node:test";
import { activationPatching } from "../../src/patching/activation-patching.ts";
import type { PatchTarget } from "../../src/patching/targets.ts";
import { REPO_ROOT } from "../helpers/fixture.ts";
import {
  fixturePatchArgs,
  loadFixtureModel,
  maxAbsDiff,
  referenceJson as R,
  referenceTensor,
} from "../helpers/reference.ts";

const model = loadFixtureModel();
const base = {
  clean: R.prompts.clean_tokens,
  corrupted: R.prompts.corrupted_tokens,
  answers: { answer: R.prompts.answer_token, wrong: R.prompts.wrong_token },
};
const cases: [string, PatchTarget][] = [
  ["resid_pre", { kind: "resid_pre" }],
  ["attn_out", { kind: "attn_out" }],
  ["mlp_out", { kind: "mlp_out" }],
  ...(["z", "q", "k", "v", "pattern"] as const).map((c): [string, PatchTarget] => [
    `head_${c}`,
    { kind: "head", component: c },
  ]),
  ["neurons_layer2_all_pos", { kind: "neurons", layer: 2 }],
  ["neurons_layer2_final_pos", { kind: "neurons", layer: 2, pos: 7 }],
];

for (const [name, target] of cases) {
  test(`fast exact patching reproduces the fixture's patch.${name}`, async () => {
    const r = await activationPatching(model, { ...base, target });
    const ref = referenceTensor(`patch.${name}`);
    assert.deepEqual(r.shape, [...ref.shape]);
    assert.ok(maxAbsDiff(Float32Array.from(r.values), ref.data) < 1e-4);
    assert.ok(Math.abs(r.clean - R.scalars.clean_logit_diff) < 1e-4);
    assert.ok(Math.abs(r.corrupted - R.scalars.corrupted_logit_diff) < 1e-4);
  });
}

test("the straightforward path reproduces the fixture too (resid_pre, head_v)", async () => {
  for (const [name, target] of [cases[0], cases[6]]) {
    const r = await activationPatching(model, { ...base, target, method: "straightforward" });
    assert.ok(maxAbsDiff(Float32Array.from(r.values), referenceTensor(`patch.${name}`).data) < 1e-4, name);
  }
});

test("CLI patch --json on the fixture reproduces the reference", () => {
  const args = [...fixturePatchArgs(), "--json"];
  const run = (target: string) =>
    JSON.parse(
      execFileSync(join(REPO_ROOT, "bin/circuitscope.js"), [...args, "--target", target], {
        encoding: "utf8",
      }),
    );
  const resid = run("resid_pre");
  assert.deepEqual(Object.keys(resid).sort(), ["axes", "clean", "corrupted", "target", "values"]);
  assert.equal(resid.target, "resid_pre");
  assert.deepEqual(resid.axes, ["layer", "pos"]);
  assert.ok(maxAbsDiff(resid.values.flat(), referenceTensor("patch.resid_pre").data) < 1e-4);
  assert.ok(Math.abs(resid.clean - R.scalars.clean_logit_diff) < 1e-4);
  const all = run("head_all");
  assert.deepEqual(all.axes, ["component", "layer", "head"]);
  ["z", "q", "k", "v", "pattern"].forEach((c, i) => {
    assert.ok(maxAbsDiff(all.values[i].flat(), referenceTensor(`patch.head_${c}`).data) < 1e-4, c);
  });
});
