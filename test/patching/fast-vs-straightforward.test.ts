import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { HookedTransformer } from "../../src/model/hooked-transformer.ts";
import { activationPatching, type PatchSweepOptions } from "../../src/patching/activation-patching.ts";
import type { PatchTarget } from "../../src/patching/targets.ts";
import type { PatchResult } from "../../src/patching/types.ts";
import { loadCheckpoint, makeRandomCheckpoint } from "../../src/weights/checkpoint.ts";
import type { ModelConfig } from "../../src/weights/config.ts";
import { gpt2Config } from "../../src/weights/families/gpt2.ts";
import { LAYER_AND_HEAD_TARGETS } from "../helpers/patch-targets.ts";
import { maxAbsDiff } from "../helpers/reference.ts";

const cfg: ModelConfig = gpt2Config({
  nLayers: 3,
  nHeads: 4,
  dModel: 32,
  dHead: 8,
  dMlp: 48,
  nCtx: 16,
  dVocab: 50257, // GPT-2's vocabulary, so the tokenizer's ids (BOS is 50256) are valid; padding uses id 0
  lnEps: 1e-5,
  act: "gelu_new",
});
const dir = mkdtempSync(join(tmpdir(), "patch-test-"));
after(() => rmSync(dir, { recursive: true, force: true }));
// Larger weights than GPT-2's init so patches move the logits visibly.
makeRandomCheckpoint(dir, cfg, { seed: 7, std: 0.25 });
// Converting consumes a checkpoint's tensors, so each model loads its own.
const processed = HookedTransformer.fromCheckpoint(loadCheckpoint(dir));
const unprocessed = HookedTransformer.fromCheckpoint(loadCheckpoint(dir), {
  backend: "reference",
  processing: false,
});

// Two pairs of different lengths (a padded batch); they differ first at position 2 and 1.
const base: Omit<PatchSweepOptions, "target"> = {
  clean: [
    [5, 17, 33, 8, 90, 4, 61],
    [9, 2, 44, 61],
  ],
  corrupted: [
    [5, 17, 71, 8, 90, 4, 61],
    [9, 12, 44, 61],
  ],
  answers: { answer: [3, 7], wrong: [11, 3] },
  chunkSize: 5, // several chunks per group
};

async function bothPaths(
  model: HookedTransformer,
  target: PatchTarget,
  extra: Partial<PatchSweepOptions> = {},
) {
  const fast = await activationPatching(model, { ...base, ...extra, target });
  const slow = await activationPatching(model, { ...base, ...extra, target, method: "straightforward" });
  return { fast, slow };
}

function assertSame(fast: PatchResult, slow: PatchResult, what: string): void {
  assert.deepEqual(fast.shape, slow.shape, what);
  assert.ok(Math.abs(fast.clean - slow.clean) < 1e-4, `${what}: clean`);
  assert.ok(Math.abs(fast.corrupted - slow.corrupted) < 1e-4, `${what}: corrupted`);
  assert.ok(maxAbsDiff(Float32Array.from(fast.raw), Float32Array.from(slow.raw)) < 1e-4, `${what}: raw`);
  assert.ok(
    maxAbsDiff(Float32Array.from(fast.perPrompt.raw), Float32Array.from(slow.perPrompt.raw)) < 1e-4,
    `${what}: per-prompt raw`,
  );
}

const targets: [string, PatchTarget][] = [
  ...LAYER_AND_HEAD_TARGETS,
  // Per position: z (head output) and pattern (per destination position); q/k/v share their code path.
  ["head_z per position", { kind: "head", component: "z", perPosition: true }],
  ["head_pattern per destination position", { kind: "head", component: "pattern", perPosition: true }],
  ["head_all", { kind: "head_all" }],
  ["neurons all positions", { kind: "neurons", layer: 1 }],
  ["neurons at one position", { kind: "neurons", layer: 2, pos: 3 }],
  [
    "custom mlp.hook_pre index sets",
    {
      kind: "custom",
      hook: "blocks.1.mlp.hook_pre",
      indexSets: [
        [[2, 5]],
        [
          [3, null],
          [5, 7],
        ],
        [[6, 0]],
      ],
    },
  ],
  // Block outputs take the additive shortcut (start one block later); the last block's output starts at ln_final.
  [
    "custom hook_resid_post of the last block",
    { kind: "custom", hook: "blocks.2.hook_resid_post", indexSets: [[[null, 3]], [[6, null]]] },
  ],
  [
    "custom hook_mlp_out",
    { kind: "custom", hook: "blocks.0.hook_mlp_out", indexSets: [[[4, null]], [[null, 1]]] },
  ],
  ["custom hook_embed", { kind: "custom", hook: "hook_embed", indexSets: [[[2, null]], [[1, 4]]] }],
  [
    "custom ln_final.hook_normalized",
    { kind: "custom", hook: "ln_final.hook_normalized", indexSets: [[[null, 3]], [[6, null]]] },
  ],
  [
    "custom attn_scores",
    { kind: "custom", hook: "blocks.2.attn.hook_attn_scores", indexSets: [[[1, null, 2]], [[0, 3, null]]] },
  ],
];

for (const [name, target] of targets) {
  test(`fast path equals the straightforward path: ${name} (padded batch of two pairs)`, async () => {
    const { fast, slow } = await bothPaths(processed, target);
    assertSame(fast, slow, name);
    // The patch must matter somewhere, or the comparison proves little.
    assert.ok(
      fast.raw.some((v) => Math.abs(v - fast.corrupted) > 1e-3),
      `${name}: no patch had an effect`,
    );
  });
}

test("fast path equals the straightforward path on an unprocessed model (LayerNorm weights kept)", async () => {
  for (const target of [{ kind: "resid_pre" }, { kind: "head_all" }] as PatchTarget[]) {
    const { fast, slow } = await bothPaths(unprocessed, target);
    assertSame(fast, slow, target.kind);
  }
});

test("user metrics: answer-logit and final-logit functions agree across paths and with the default", async () => {
  const target: PatchTarget = { kind: "head", component: "z" };
  const meanDiff = (xs: readonly ArrayLike<number>[], a: (i: number) => number, w: (i: number) => number) =>
    xs.reduce((s, x, i) => s + x[a(i)] - x[w(i)], 0) / xs.length;
  const def = await activationPatching(processed, { ...base, target });
  const viaAnswers = await bothPaths(processed, target, {
    metric: {
      kind: "answer_logits",
      fn: (xs) =>
        meanDiff(
          xs,
          () => 0,
          () => 1,
        ),
    },
  });
  assertSame(viaAnswers.fast, viaAnswers.slow, "answer_logits");
  assert.ok(maxAbsDiff(Float32Array.from(viaAnswers.fast.values), Float32Array.from(def.values)) < 1e-9);
  // A final-logits metric sees every logit: a log-prob of token 3 for both prompts.
  const logProb3 = (xs: readonly Float32Array[]) =>
    xs.reduce((s, x) => {
      const m = Math.max(...x);
      return s + x[3] - m - Math.log(x.reduce((t, v) => t + Math.exp(v - m), 0));
    }, 0) / xs.length;
  const viaLogits = await bothPaths(processed, target, { metric: { kind: "final_logits", fn: logProb3 } });
  assertSame(viaLogits.fast, viaLogits.slow, "final_logits");
});

test("per-prompt results: batch value is the mean of prompts' values, each normalised by its own clean/corrupted", async () => {
  const r = await activationPatching(processed, { ...base, target: { kind: "resid_pre" } });
  const n = r.raw.length;
  assert.equal(r.perPrompt.raw.length, 2 * n);
  assert.ok(Math.abs((r.perPrompt.clean[0] + r.perPrompt.clean[1]) / 2 - r.clean) < 1e-9);
  for (let s = 0; s < n; s++) {
    assert.ok(Math.abs((r.perPrompt.raw[s] + r.perPrompt.raw[n + s]) / 2 - r.raw[s]) < 1e-9);
    for (let b = 0; b < 2; b++) {
      const c = r.perPrompt.clean[b];
      const x = r.perPrompt.corrupted[b];
      assert.ok(Math.abs(r.perPrompt.values[b * n + s] - (r.perPrompt.raw[b * n + s] - x) / (c - x)) < 1e-9);
    }
  }
  // Positions past the shorter prompt's end cannot change it: its patched diff stays at its corrupted diff.
  const P = r.shape[1];
  for (let l = 0; l < r.shape[0]; l++)
    for (let p = 4; p < P; p++)
      assert.ok(Math.abs(r.perPrompt.raw[n + l * P + p] - r.perPrompt.corrupted[1]) < 1e-5);
  // Patching the whole resid_pre of layer 0 at every differing position restores the clean run exactly.
  const restore = await activationPatching(processed, {
    ...base,
    target: { kind: "custom", hook: "blocks.0.hook_resid_pre", indexSets: [[[null, null]]] },
  });
  assert.ok(Math.abs(restore.values[0] - 1) < 1e-4);
});
