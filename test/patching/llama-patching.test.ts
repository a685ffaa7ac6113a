/**
 * Activation patching on the bundled Llama-architecture model (stories260k: GQA 8/4, rotary, SwiGLU):
 * the fast exact path against the straightforward one for every target, and both against patching done
 * in the independent float64 reference.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { describe, test } from "node:test";
import { HookedTransformer } from "../../src/model/hooked-transformer.ts";
import { activationPatching, type PatchSweepOptions } from "../../src/patching/activation-patching.ts";
import type { PatchTarget } from "../../src/patching/targets.ts";
import type { PatchResult } from "../../src/patching/types.ts";
import { REPO_ROOT } from "../helpers/fixture.ts";
import {
  llamaReferenceFromTensors,
  type RefTensor,
  readHfTensors,
  readLlamaRefConfig,
  referenceEncode,
  referenceLogitDiff,
  referencePatchedLogitDiff,
} from "../helpers/llama-reference.ts";
import { LAYER_AND_HEAD_TARGETS } from "../helpers/patch-targets.ts";
import { maxAbsDiff } from "../helpers/reference.ts";

const STORIES = join(REPO_ROOT, "models/stories260k");
const SHE = 358;
const HE = 281;

// Pair 0 differs first at position 6 (Lily/Tim after "Once upon a time,"): patched runs reuse the
// corrupted run's keys/values of positions 0..5, which must keep their rotary positions. Pair 1 differs
// at position 1 and is shorter (a padded batch).
const clean = [
  referenceEncode(STORIES, "Once upon a time, Lily was happy. Then"),
  referenceEncode(STORIES, "Lily was happy because"),
];
const corrupted = [
  referenceEncode(STORIES, "Once upon a time, Tim was happy. Then"),
  referenceEncode(STORIES, "Tim was happy because"),
];

const model = await HookedTransformer.fromPretrained("stories260k");
const base: Omit<PatchSweepOptions, "target"> = {
  clean,
  corrupted,
  answers: { answer: SHE, wrong: HE },
  chunkSize: 7,
};

async function bothPaths(target: PatchTarget, opts: Partial<PatchSweepOptions> = {}) {
  const fast = await activationPatching(model, { ...base, ...opts, target });
  const slow = await activationPatching(model, { ...base, ...opts, target, method: "straightforward" });
  return { fast, slow };
}

function assertSame(fast: PatchResult, slow: PatchResult, what: string): void {
  assert.deepEqual(fast.shape, slow.shape, what);
  assert.deepEqual(fast.axes, slow.axes, what);
  const d = maxAbsDiff(Float32Array.from(fast.perPrompt.raw), Float32Array.from(slow.perPrompt.raw));
  assert.ok(d < 1e-4, `${what}: per-prompt logit differences differ by ${d}`);
}

describe("stories260k: fast exact patching equals one full forward per patch", () => {
  const targets: [string, PatchTarget][] = [
    ...LAYER_AND_HEAD_TARGETS,
    ["head_k per position", { kind: "head", component: "k", perPosition: true }],
    ["head_v per position", { kind: "head", component: "v", perPosition: true }],
    ["head_all", { kind: "head_all" }],
    ["neurons of layer 2 (mlp.hook_post)", { kind: "neurons", layer: 2 }],
    [
      "rotated q/k, the up projection, one key/value head of v",
      {
        kind: "sites",
        sites: [
          { hook: "blocks.1.attn.hook_rot_q", selectors: [[null, 5, null]] },
          { hook: "blocks.3.attn.hook_rot_k", selectors: [[null, 2, null]] },
          { hook: "blocks.2.attn.hook_rot_k", selectors: [[7, 1, null]] },
          { hook: "blocks.0.mlp.hook_pre_linear", selectors: [[6, null]] },
          { hook: "blocks.4.attn.hook_v", selectors: [[null, 3, null]] },
        ],
      },
    ],
  ];
  for (const [name, target] of targets) {
    test(name, async () => {
      const { fast, slow } = await bothPaths(target);
      assertSame(fast, slow, name);
      assert.ok(
        fast.perPrompt.raw.some(
          (x, i) => Math.abs(x - fast.perPrompt.corrupted[i % 2 === 0 ? 0 : 1]) > 1e-3,
        ) || fast.raw.some((x) => Math.abs(x - fast.corrupted) > 1e-3),
        `${name}: some patch changes the metric`,
      );
    });
  }

  test("k/v targets index key/value heads; head_all's k/v cells follow each query head's key/value head", async () => {
    const k = await activationPatching(model, { ...base, target: { kind: "head", component: "k" } });
    assert.deepEqual(k.axes, ["layer", "kv_head"]);
    assert.deepEqual(k.shape, [5, 4]);
    const all = await activationPatching(model, { ...base, target: { kind: "head_all" } });
    assert.deepEqual(all.shape, [5, 5, 8]);
    const cell = (c: number, l: number, h: number) => all.values[(c * 5 + l) * 8 + h];
    for (const c of [2, 3]) // k, v
      for (let l = 0; l < 5; l++)
        for (let h = 0; h < 8; h++) {
          assert.equal(
            cell(c, l, h),
            cell(c, l, h - (h % 2)),
            `query heads ${h - (h % 2)} and ${h} share a kv head`,
          );
          const single = c === 2 ? k.values[l * 4 + Math.floor(h / 2)] : Number.NaN;
          if (c === 2) assert.ok(Math.abs(cell(c, l, h) - single) < 1e-9);
        }
  });
});

describe("stories260k: patching agrees with the independent float64 reference", () => {
  const c = readLlamaRefConfig(STORIES);
  const tensors = readHfTensors(STORIES);
  const [cleanTokens, corruptedTokens] = [clean[0], corrupted[0]];
  const cleanActs = llamaReferenceFromTensors(c, tensors, cleanTokens);
  const logitDiff = (acts: Map<string, RefTensor>) => referenceLogitDiff(acts, SHE, HE);
  const patched = (hook: string, pick: (flatIndex: number) => boolean) =>
    referencePatchedLogitDiff(
      c,
      tensors,
      { clean: cleanActs, corruptedTokens, answer: SHE, wrong: HE },
      hook,
      pick,
    );
  const pair0 = { ...base, clean: [clean[0]], corrupted: [corrupted[0]] };

  test("resid_pre [layer, pos]", async () => {
    const r = await activationPatching(model, { ...pair0, target: { kind: "resid_pre" } });
    const n = cleanTokens.length;
    assert.ok(Math.abs(r.clean - logitDiff(cleanActs)) < 1e-4);
    for (let l = 0; l < 5; l++)
      for (let p = 0; p < n; p++) {
        const want = patched(`blocks.${l}.hook_resid_pre`, (i) => Math.floor(i / c.D) === p);
        assert.ok(Math.abs(r.raw[l * n + p] - want) < 1e-4, `L${l} pos ${p}: ${r.raw[l * n + p]} vs ${want}`);
      }
  });

  test("head_all's k and v cells of query head h patch key/value head h / 2; per-position patterns patch a destination row", async () => {
    const all = await activationPatching(model, { ...pair0, target: { kind: "head_all" } });
    const n = cleanTokens.length;
    // hook_k / hook_v are [n, 4 kv heads, dh]: query heads 2j and 2j + 1 read key/value head j.
    for (const [ci, part] of [
      [2, "k"],
      [3, "v"],
    ] as const)
      for (const l of [1, 4])
        for (let h = 0; h < 8; h++) {
          const want = patched(
            `blocks.${l}.attn.hook_${part}`,
            (i) => Math.floor(i / c.dh) % 4 === Math.floor(h / 2),
          );
          const got = all.raw[(ci * 5 + l) * 8 + h];
          assert.ok(Math.abs(got - want) < 1e-4, `${part} L${l}H${h}: ${got} vs ${want}`);
        }
    const pat = await activationPatching(model, {
      ...pair0,
      target: { kind: "head", component: "pattern", perPosition: true },
    });
    // hook_pattern is [8 heads, n destination, n source]: cell (l, q, h) is head h's row q.
    for (const l of [2, 4])
      for (let q = 5; q < n; q++)
        for (const h of [0, 3, 6]) {
          const want = patched(
            `blocks.${l}.attn.hook_pattern`,
            (i) => Math.floor(i / (n * n)) === h && Math.floor(i / n) % n === q,
          );
          const got = pat.raw[(l * n + q) * 8 + h];
          assert.ok(Math.abs(got - want) < 1e-4, `pattern L${l} row ${q} H${h}: ${got} vs ${want}`);
        }
  });

  test("head_v [layer, kv_head] and head_k per position", async () => {
    const v = await activationPatching(model, { ...pair0, target: { kind: "head", component: "v" } });
    for (let l = 0; l < 5; l++)
      for (let h = 0; h < 4; h++) {
        const want = patched(`blocks.${l}.attn.hook_v`, (i) => Math.floor(i / c.dh) % 4 === h);
        assert.ok(Math.abs(v.raw[l * 4 + h] - want) < 1e-4, `v L${l} KV${h}: ${v.raw[l * 4 + h]} vs ${want}`);
      }
    const k = await activationPatching(model, {
      ...pair0,
      target: { kind: "head", component: "k", perPosition: true },
    });
    const n = cleanTokens.length;
    for (const l of [0, 3])
      for (let p = 5; p < n; p++)
        for (let h = 0; h < 4; h++) {
          const want = patched(
            `blocks.${l}.attn.hook_k`,
            (i) => Math.floor(i / (4 * c.dh)) === p && Math.floor(i / c.dh) % 4 === h,
          );
          const got = k.raw[(l * n + p) * 4 + h];
          assert.ok(Math.abs(got - want) < 1e-4, `k L${l} pos ${p} KV${h}: ${got} vs ${want}`);
        }
  });
});
