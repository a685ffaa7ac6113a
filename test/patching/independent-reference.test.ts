/**
 * Patching results against a reference that shares no code with the planner: each prompt is run alone
 * (no padding) with a hand-written `fwdHooks` hook that copies the clean activation into the corrupted
 * run at flat indices computed here by hand (not through planTarget, headSite, hookLayout or
 * selectElements), and the metric is read from the logits by hand (not through MetricReader). Both the
 * fast path and the straightforward path (which share the planner's sites) are held to it, so a wrong
 * selector or axis order in targets.ts fails here even when the two paths agree with each other.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { activationPatching } from "../../src/patching/activation-patching.ts";
import type { PatchTarget } from "../../src/patching/targets.ts";
import type { PatchResult } from "../../src/patching/types.ts";
import { RANDOM_PATCH_CFG, RANDOM_PATCH_PAIRS, randomPatchModels } from "../helpers/random-patch-model.ts";

const { processed: model } = randomPatchModels();
const { nLayers: L, nHeads: H, dHead: dh, dModel: D, dMlp } = RANDOM_PATCH_CFG;
const clean = RANDOM_PATCH_PAIRS.clean as number[][];
const corrupted = RANDOM_PATCH_PAIRS.corrupted as number[][];
const answer = [3, 7];
const wrong = [11, 3];
const B = clean.length;
const nPos = Math.max(...clean.map((t) => t.length));

/** Logit(answer) − logit(wrong) of prompt b at its last position, optionally with one hand-written patch. */
function logitDiff(
  b: number,
  tokens: number[],
  patch?: { hook: string; pick: (i: number) => boolean },
): number {
  const hooks = patch
    ? [
        [
          patch.hook,
          (act: { data: Float32Array }) => {
            const src = cleanAct(b, patch.hook);
            for (let i = 0; i < act.data.length; i++) if (patch.pick(i)) act.data[i] = src[i];
          },
        ] as const,
      ]
    : [];
  const logits = model.run([tokens], { logits: "last", fwdHooks: hooks }).data;
  return logits[answer[b]] - logits[wrong[b]];
}

const cleanCache = new Map<string, Float32Array>();
function cleanAct(b: number, hook: string): Float32Array {
  const key = `${b} ${hook}`;
  if (!cleanCache.has(key)) {
    const { cache } = model.runWithCache([clean[b]], { namesFilter: [hook], logits: "none" });
    cleanCache.set(key, cache.get(hook).data.slice());
  }
  return cleanCache.get(key)!;
}

const cleanDiff = clean.map((t, b) => logitDiff(b, t));
const corruptedDiff = corrupted.map((t, b) => logitDiff(b, t));
const mean = (xs: number[]) => xs.reduce((s, x) => s + x, 0) / xs.length;

/**
 * Every cell of `shape` (row-major) → the hook and the flat-index predicate over prompt b's own
 * activation (n = its length); the result's per-prompt raw values and normalised batch values must match.
 */
async function assertMatchesHand(
  target: PatchTarget,
  shape: number[],
  cell: (ix: number[], n: number) => { hook: string; pick: (i: number) => boolean },
): Promise<PatchResult[]> {
  const results = await Promise.all(
    (["exact", "straightforward"] as const).map((method) =>
      activationPatching(model, { clean, corrupted, answers: { answer, wrong }, target, method }),
    ),
  );
  const size = shape.reduce((a, b) => a * b, 1);
  const want = Array.from({ length: B }, () => new Float64Array(size));
  for (let s = 0; s < size; s++) {
    const ix: number[] = [];
    for (let a = shape.length - 1, r = s; a >= 0; a--) {
      ix.unshift(r % shape[a]);
      r = Math.floor(r / shape[a]);
    }
    for (let b = 0; b < B; b++) want[b][s] = logitDiff(b, corrupted[b], cell(ix, corrupted[b].length));
  }
  for (const r of results) {
    assert.deepEqual(r.shape, shape, `${r.method}: shape`);
    assert.ok(
      Math.abs(r.clean - mean(cleanDiff)) < 1e-4,
      `${r.method}: clean ${r.clean} vs ${mean(cleanDiff)}`,
    );
    assert.ok(Math.abs(r.corrupted - mean(corruptedDiff)) < 1e-4, `${r.method}: corrupted`);
    for (let s = 0; s < size; s++) {
      for (let b = 0; b < B; b++) {
        const got = r.perPrompt.raw[b * size + s];
        assert.ok(
          Math.abs(got - want[b][s]) < 1e-4,
          `${r.method} prompt ${b} cell ${s}: ${got} vs ${want[b][s]}`,
        );
      }
      const batch =
        (mean(want.map((w) => w[s])) - mean(corruptedDiff)) / (mean(cleanDiff) - mean(corruptedDiff));
      assert.ok(
        Math.abs(r.values[s] - batch) < 1e-3,
        `${r.method} cell ${s}: value ${r.values[s]} vs ${batch}`,
      );
    }
  }
  // Some cell must move the metric, or matching the corrupted run everywhere would pass.
  assert.ok(
    want[0].some((v) => Math.abs(v - corruptedDiff[0]) > 1e-3),
    "no hand-patched cell changed the metric",
  );
  return results;
}

// Per-prompt layouts, written out here: resid [n, D], q/k/v/z [n, H, dh], pattern [H, n(dest), n(src)],
// mlp.hook_post [n, d_mlp].
test("resid_pre [layer, pos]: position p's whole residual vector", async () => {
  await assertMatchesHand({ kind: "resid_pre" }, [L, nPos], ([l, p]) => ({
    hook: `blocks.${l}.hook_resid_pre`,
    pick: (i) => Math.floor(i / D) === p,
  }));
});

for (const c of ["z", "q", "k", "v"] as const) {
  test(`head_${c} [layer, head]: head h's d_head slice at every position`, async () => {
    await assertMatchesHand({ kind: "head", component: c }, [L, H], ([l, h]) => ({
      hook: `blocks.${l}.attn.hook_${c}`,
      pick: (i) => Math.floor(i / dh) % H === h,
    }));
  });
}

test("head_z per position [layer, pos, head]: one head at one position", async () => {
  await assertMatchesHand({ kind: "head", component: "z", perPosition: true }, [L, nPos, H], ([l, p, h]) => ({
    hook: `blocks.${l}.attn.hook_z`,
    pick: (i) => Math.floor(i / (H * dh)) === p && Math.floor(i / dh) % H === h,
  }));
});

test("head_pattern [layer, head]: the head's whole pattern", async () => {
  await assertMatchesHand({ kind: "head", component: "pattern" }, [L, H], ([l, h], n) => ({
    hook: `blocks.${l}.attn.hook_pattern`,
    pick: (i) => Math.floor(i / (n * n)) === h,
  }));
});

test("head_pattern per position [layer, pos, head]: the DESTINATION row pos of the head's pattern (every source)", async () => {
  await assertMatchesHand(
    { kind: "head", component: "pattern", perPosition: true },
    [L, nPos, H],
    ([l, q, h], n) => ({
      hook: `blocks.${l}.attn.hook_pattern`,
      pick: (i) => Math.floor(i / (n * n)) === h && Math.floor(i / n) % n === q,
    }),
  );
});

test("head_all [component, layer, head]: z, q, k, v, pattern in that order", async () => {
  const parts = ["z", "q", "k", "v", "pattern"];
  await assertMatchesHand({ kind: "head_all" }, [5, L, H], ([c, l, h], n) => ({
    hook: `blocks.${l}.attn.hook_${parts[c]}`,
    pick: parts[c] === "pattern" ? (i) => Math.floor(i / (n * n)) === h : (i) => Math.floor(i / dh) % H === h,
  }));
});

test("neurons of one layer at one position [neuron]", async () => {
  await assertMatchesHand({ kind: "neurons", layer: 1, pos: 3 }, [dMlp], ([k]) => ({
    hook: "blocks.1.mlp.hook_post",
    pick: (i) => i === 3 * dMlp + k,
  }));
});

test("neurons of every layer at every position [layer, neuron]", async () => {
  await assertMatchesHand({ kind: "neurons" }, [L, dMlp], ([l, k]) => ({
    hook: `blocks.${l}.mlp.hook_post`,
    pick: (i) => i % dMlp === k,
  }));
});

test("sites: a selector's null means the whole axis, numbers pick one index per axis", async () => {
  const sites = [
    { hook: "blocks.1.attn.hook_pattern", selectors: [[null, 2, null]] }, // every head's destination row 2
    { hook: "blocks.2.attn.hook_attn_scores", selectors: [[1, null, 2]] }, // head 1's source column 2
    {
      hook: "blocks.0.mlp.hook_pre",
      selectors: [
        [3, null],
        [5, 7],
      ],
    }, // position 3 whole, plus one unit at 5
    { hook: "blocks.2.hook_resid_mid", selectors: [[null, 4]] }, // one residual dimension at every position
  ];
  const picks: ((i: number, n: number) => boolean)[] = [
    (i, n) => Math.floor(i / n) % n === 2,
    (i, n) => Math.floor(i / (n * n)) === 1 && i % n === 2,
    (i) => Math.floor(i / dMlp) === 3 || i === 5 * dMlp + 7,
    (i) => i % D === 4,
  ];
  await assertMatchesHand({ kind: "sites", sites }, [sites.length], ([s], n) => ({
    hook: sites[s].hook,
    pick: (i) => picks[s](i, n),
  }));
});

test("property: in the last layer, patching a pattern row other than a prompt's final one leaves that prompt's metric exactly at its corrupted value", async () => {
  for (const method of ["exact", "straightforward"] as const) {
    const r = await activationPatching(model, {
      clean,
      corrupted,
      answers: { answer, wrong },
      target: { kind: "head", component: "pattern", perPosition: true },
      method,
    });
    const size = L * nPos * H;
    let finalRowMoved = false;
    for (let b = 0; b < B; b++) {
      const last = corrupted[b].length - 1;
      for (let q = 0; q < nPos; q++)
        for (let h = 0; h < H; h++) {
          const got = r.perPrompt.raw[b * size + ((L - 1) * nPos + q) * H + h];
          if (q !== last)
            assert.equal(got, r.perPrompt.corrupted[b], `${method} prompt ${b} row ${q} head ${h}`);
          else if (Math.abs(got - r.perPrompt.corrupted[b]) > 1e-3) finalRowMoved = true;
        }
    }
    assert.ok(finalRowMoved, `${method}: patching the final rows changes something`);
  }
});
