/**
 * Activation patching on random GPT-NeoX checkpoints (parallel and sequential residual): the fast exact
 * path against the straightforward one for every target, and resid_mid / mlp_out patches against the
 * same patch done in the independent float64 reference.
 */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import { HookedTransformer } from "../../src/model/hooked-transformer.ts";
import { activationPatching } from "../../src/patching/activation-patching.ts";
import type { PatchTarget } from "../../src/patching/targets.ts";
import { loadCheckpoint } from "../../src/weights/checkpoint.ts";
import { type RefTensor, readHfTensors, referenceLogitDiff } from "../helpers/llama-reference.ts";
import { neoxReferenceFromTensors, readNeoxRefConfig } from "../helpers/neox-reference.ts";
import { makeNeoxCheckpoint, NEOX_VARIANTS } from "../helpers/neox-variants.ts";
import { LAYER_AND_HEAD_TARGETS } from "../helpers/patch-targets.ts";
import { maxAbsDiff } from "../helpers/reference.ts";

const root = mkdtempSync(join(tmpdir(), "circuitscope-neox-patch-"));
after(() => rmSync(root, { recursive: true, force: true }));

// Pair 0 differs first at position 4 (patched runs reuse the corrupted prefix's keys/values); pair 1 at 1.
const clean = [
  [1, 17, 200, 45, 9, 88, 120, 3],
  [1, 250, 2, 77, 5, 6, 7, 8],
];
const corrupted = [
  [1, 17, 200, 45, 300, 88, 120, 3],
  [1, 30, 2, 77, 5, 6, 7, 8],
];
const answers = { answer: 11, wrong: 22 };

for (const i of [0, 1]) {
  const v = NEOX_VARIANTS[i];
  describe(`${v.name}: patching`, () => {
    const { dir } = makeNeoxCheckpoint(root, i);
    const model = HookedTransformer.fromCheckpoint(loadCheckpoint(dir));
    after(() => model.dispose());
    const base = { clean, corrupted, answers, chunkSize: 5 };
    const targets: [string, PatchTarget][] = [
      ...LAYER_AND_HEAD_TARGETS,
      ["head_all", { kind: "head_all" }],
      ["neurons of layer 1", { kind: "neurons", layer: 1 }],
    ];
    for (const [what, target] of targets) {
      test(`${what}: fast exact path = one full forward per patch`, async () => {
        const fast = await activationPatching(model, { ...base, target });
        const slow = await activationPatching(model, { ...base, target, method: "straightforward" });
        assert.deepEqual(fast.shape, slow.shape);
        const d = maxAbsDiff(Float32Array.from(fast.perPrompt.raw), Float32Array.from(slow.perPrompt.raw));
        assert.ok(d < 1e-4, `per-prompt logit differences differ by ${d}`);
        assert.ok(
          fast.perPrompt.raw.some((x) => Math.abs(x) > 1e-3),
          "some patch moves the metric",
        );
      });
    }

    test("resid_mid and mlp_out patches = the same patch in the float64 reference (processed)", async () => {
      const c = readNeoxRefConfig(dir);
      const t = readHfTensors(dir);
      const P = clean[0].length;
      for (const kind of ["resid_mid", "mlp_out"] as const) {
        const res = await activationPatching(model, { ...base, target: { kind } });
        const [L, nPos] = res.shape;
        const cleanActs = neoxReferenceFromTensors(c, t, clean[0], { processed: true });
        for (const [l, p] of [
          [0, 4],
          [L - 1, nPos - 1],
          [0, nPos - 1],
        ]) {
          const hook = `blocks.${l}.hook_${kind}`;
          const src = cleanActs.get(hook)!.data;
          const acts = neoxReferenceFromTensors(c, t, corrupted[0], {
            processed: true,
            hook: (name: string, act: RefTensor) => {
              if (name !== hook) return;
              for (let d = 0; d < c.D; d++) act.data[p * c.D + d] = src[p * c.D + d];
            },
          });
          const want = referenceLogitDiff(acts, answers.answer, answers.wrong);
          const got = res.perPrompt.raw[l * nPos + p]; // [prompt, layer, pos]: prompt 0
          assert.ok(
            Math.abs(got - want) < 1e-4 * Math.max(1, Math.abs(want)),
            `${hook} pos ${p}: ${got} vs ${want}`,
          );
        }
        assert.equal(nPos, P);
      }
    });
  });
}
