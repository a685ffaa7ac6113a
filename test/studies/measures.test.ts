/**
 * The study's per-prompt measurements, averaged over the fixture's two prompts, against the fixture's
 * reference (computed in float64 by an independent implementation).
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  exactPatching,
  logitDiffsOf,
  type PairTokens,
  type PatchTarget,
  residualAttributions,
} from "../../src/studies/contractions/measures.ts";
import { loadFixtureModel, referenceJson, referenceTensor } from "../helpers/reference.ts";

const ref = referenceJson.prompts;
const model = loadFixtureModel({ backend: "reference" });
const pairs: PairTokens = {
  clean: ref.clean_tokens,
  corrupted: ref.corrupted_tokens,
  answer: ref.clean_tokens.map(() => ref.answer_token),
  wrong: ref.clean_tokens.map(() => ref.wrong_token),
};
const meanOf = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
const TOL = 2e-4;

function close(actual: number, expected: number, what: string): void {
  assert.ok(Math.abs(actual - expected) < TOL, `${what}: ${actual} vs reference ${expected}`);
}

describe("study measurements vs the fixture reference", () => {
  const clean = logitDiffsOf(model, pairs.clean, pairs.answer, pairs.wrong, 8);
  const corrupted = logitDiffsOf(model, pairs.corrupted, pairs.answer, pairs.wrong, 8);

  it("logit differences", () => {
    close(meanOf(clean), referenceJson.scalars.clean_logit_diff, "clean");
    close(meanOf(corrupted), referenceJson.scalars.corrupted_logit_diff, "corrupted");
  });

  it("accumulated, decomposed and per-head attributions; decomposed sums to the final accumulated value", () => {
    // Batch size 1 also checks that batching does not change per-prompt values.
    const r = residualAttributions(model, pairs.clean, pairs.answer, pairs.wrong, 1);
    const acc = referenceTensor("attr.accumulated_resid");
    r.accumulatedLabels.forEach((label, i) => {
      close(meanOf(r.accumulated.map((p) => p[i])), acc.data[i], `accumulated ${label}`);
    });
    const dec = referenceTensor("attr.decompose_resid");
    r.decomposedLabels.forEach((label, i) => {
      close(meanOf(r.decomposed.map((p) => p[i])), dec.data[i], `decomposed ${label}`);
    });
    const heads = referenceTensor("attr.heads");
    const [L, H] = heads.shape;
    for (let l = 0; l < L; l++)
      for (let h = 0; h < H; h++)
        close(meanOf(r.heads.map((p) => p[l][h])), heads.at(l, h), `head L${l}H${h}`);
    for (const [b, d] of r.decomposed.entries()) {
      close(
        d.reduce((a, x) => a + x, 0),
        r.accumulated[b].at(-1)!,
        "sum of decomposed",
      );
    }
  });

  it("exact patching per layer and position, per head part and per neuron, normalised like the reference", () => {
    const gap = meanOf(clean) - meanOf(corrupted);
    const P = pairs.clean[0].length;
    const L = model.cfg.nLayers;
    const H = model.cfg.nHeads;
    const cases: [string, PatchTarget, number][] = [];
    for (const [ref, hook] of [
      ["resid_pre", "hook_resid_pre"],
      ["attn_out", "hook_attn_out"],
      ["mlp_out", "hook_mlp_out"],
    ] as const) {
      for (let l = 0; l < L; l++)
        for (let p = 0; p < P; p++) {
          cases.push([
            `${ref} L${l} p${p}`,
            { label: "", hook, layer: l, position: p },
            referenceTensor(`patch.${ref}`).at(l, p),
          ]);
        }
    }
    for (const part of ["z", "q", "k", "v", "pattern"]) {
      const hook = part === "pattern" ? "attn.hook_pattern" : `attn.hook_${part}`;
      for (let l = 0; l < L; l++)
        for (let h = 0; h < H; h++) {
          cases.push([
            `head_${part} L${l}H${h}`,
            { label: "", hook, layer: l, head: h },
            referenceTensor(`patch.head_${part}`).at(l, h),
          ]);
        }
    }
    for (const n of [0, 17, 100, 255]) {
      const all = referenceTensor("patch.neurons_layer2_all_pos").data[n];
      const fin = referenceTensor("patch.neurons_layer2_final_pos").data[n];
      cases.push([`neuron L2N${n}`, { label: "", hook: "mlp.hook_post", layer: 2, neuron: n }, all]);
      cases.push([
        `neuron L2N${n} final`,
        { label: "", hook: "mlp.hook_post", layer: 2, neuron: n, position: P - 1 },
        fin,
      ]);
    }
    const results = exactPatching(
      model,
      pairs,
      cases.map((c) => c[1]),
      8,
    );
    cases.forEach(([what, , expected], i) => {
      close(meanOf(results[i]) / gap, expected, what);
    });
  });
});

describe("attribution patching estimates vs the fixture reference", () => {
  it("match the reference per layer/position, per head part and per neuron (normalised)", async () => {
    const { attributionPatching } = await import("../../src/studies/contractions/attribution.ts");
    const clean = logitDiffsOf(model, pairs.clean, pairs.answer, pairs.wrong, 8);
    const corrupted = logitDiffsOf(model, pairs.corrupted, pairs.answer, pairs.wrong, 8);
    const gap = meanOf(clean) - meanOf(corrupted);
    const P = pairs.clean[0].length;
    const cases: [string, PatchTarget, number][] = [];
    for (const [ref, hook] of [
      ["resid_pre", "hook_resid_pre"],
      ["attn_out", "hook_attn_out"],
      ["mlp_out", "hook_mlp_out"],
    ] as const) {
      for (let l = 0; l < 3; l++)
        for (let p = 0; p < P; p++)
          cases.push([
            `${ref} L${l} p${p}`,
            { label: "", hook, layer: l, position: p },
            referenceTensor(`attrpatch.${ref}`).at(l, p),
          ]);
    }
    for (const part of ["z", "q", "k", "v", "pattern"]) {
      const hook = part === "pattern" ? "attn.hook_pattern" : `attn.hook_${part}`;
      for (let l = 0; l < 3; l++)
        for (let h = 0; h < 4; h++)
          cases.push([
            `head_${part} L${l}H${h}`,
            { label: "", hook, layer: l, head: h },
            referenceTensor(`attrpatch.head_${part}`).at(l, h),
          ]);
    }
    for (const n of [0, 5, 200]) {
      cases.push([
        `neuron L1N${n}`,
        { label: "", hook: "mlp.hook_post", layer: 1, neuron: n },
        referenceTensor("attrpatch.neurons").at(1, n),
      ]);
    }
    // Batch size 1 vs 2 must agree: the per-prompt rescaling by B is what makes them equal.
    for (const batch of [1, 2]) {
      const est = attributionPatching(
        model,
        pairs,
        cases.map((c) => c[1]),
        batch,
      );
      for (const [i, [what, , expected]] of cases.entries()) {
        close(meanOf(est[i]) / gap, expected, `${what} (batch ${batch})`);
      }
    }
  });
});
