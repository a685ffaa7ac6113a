/**
 * The backward copies of the weights (onnxruntime's W^T sessions): releasing each layer's after use gives
 * the same gradients as keeping them all, builds each layer's once per call however many prompts, and
 * leaves none held; keeping holds one per projection. On the fixture GPT-2 and on stories260k (Llama).
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { test } from "node:test";
import { CircuitTask } from "../../src/circuits/circuit-task.ts";
import {
  backwardCopyBytes,
  PASSES_MAX_WEIGHT_SHARE,
  passesTogether,
  releasesBackwardCopies,
  weightOps,
} from "../../src/gradients/backward-copies.ts";
import { answerLogProbMetric } from "../../src/gradients/logit-metric.ts";
import { blockOps, opsOfBlock } from "../../src/model/block-ops.ts";
import { HookedTransformer } from "../../src/model/hooked-transformer.ts";
import { type AttributionTarget, attributionPatchingAll } from "../../src/patching/attribution-patching.ts";
import type { Kernels, LinearOp } from "../../src/tensor/kernels.ts";
import { createOnnxKernels } from "../../src/tensor/onnx-kernels.ts";
import { loadCheckpoint } from "../../src/weights/checkpoint.ts";
import { FIXTURE_DIR, REPO_ROOT } from "../helpers/fixture.ts";
import { referenceEncode } from "../helpers/llama-reference.ts";

/** onnx kernels that count how often a backward copy is built, and the most bytes held at once. */
function countingKernels() {
  const inner = createOnnxKernels({ threads: 1 });
  const ops: LinearOp[] = [];
  const stats = { builds: 0, peakHeld: 0 };
  const kernels: Kernels = {
    ...inner,
    linear(W, inDim, outDim, b) {
      const op = inner.linear(W, inDim, outDim, b);
      ops.push(op);
      const backward = op.backward.bind(op);
      op.backward = (dy, rows) => {
        if (op.backwardBytes === 0) stats.builds++;
        const out = backward(dy, rows);
        const held = ops.reduce((s, o) => s + o.backwardBytes, 0);
        stats.peakHeld = Math.max(stats.peakHeld, held);
        return out;
      };
      return op;
    },
  };
  return { kernels, stats };
}

const TARGETS: AttributionTarget[] = [
  { kind: "resid_pre" },
  { kind: "head", component: "v" },
  { kind: "neurons" },
  { kind: "mlp_out" },
];

function resultValues(rs: ReturnType<typeof attributionPatchingAll>): number[][] {
  return rs.map((r) => [...r.values, ...r.perPrompt.raw]);
}

interface Case {
  name: string;
  load: (kernels: Kernels) => HookedTransformer;
  pairs: { clean: number[][]; corrupted: number[][]; answers: { answer: number; wrong: number } };
}

const STORIES = join(REPO_ROOT, "models/stories260k");
const stories = (t: string) => referenceEncode(STORIES, t);
const CASES: Case[] = [
  {
    name: "tiny-gpt2",
    load: (kernels) => HookedTransformer.fromCheckpoint(loadCheckpoint(FIXTURE_DIR), { backend: kernels }),
    pairs: {
      // Three pairs of different lengths: three backward passes per call.
      clean: [
        [3, 17, 40, 9, 22],
        [5, 8, 13, 21, 34, 55, 2],
        [11, 12, 13],
      ],
      corrupted: [
        [3, 19, 40, 9, 22],
        [5, 8, 14, 21, 34, 55, 2],
        [11, 30, 13],
      ],
      answers: { answer: 7, wrong: 29 },
    },
  },
  {
    name: "stories260k (Llama)",
    load: (kernels) => HookedTransformer.fromCheckpoint(loadCheckpoint(STORIES), { backend: kernels }),
    pairs: {
      clean: [stories("Once upon a time, Lily was happy. Then"), stories("Tom saw a big dog and Sue")],
      corrupted: [stories("Once upon a time, Tim was happy. Then"), stories("Tom saw a big cat and Sue")],
      answers: { answer: 358, wrong: 281 }, // ▁she, ▁he
    },
  },
];

for (const c of CASES) {
  test(`${c.name}: releasing each layer's backward copy = keeping them all, bit for bit; built once per call`, () => {
    const released = countingKernels();
    const kept = countingKernels();
    const mRelease = c.load(released.kernels);
    const mKeep = c.load(kept.kernels);
    const allBlockOps = Array.from({ length: mKeep.cfg.nLayers }, (_, l) =>
      opsOfBlock(blockOps(mKeep, l)),
    ).flat();
    const blockBytes = allBlockOps.reduce((s, op) => s + 4 * op.inDim * op.outDim, 0);
    const largestLayer = Math.max(
      ...Array.from({ length: mKeep.cfg.nLayers }, (_, l) =>
        opsOfBlock(blockOps(mKeep, l)).reduce((s, op) => s + 4 * op.inDim * op.outDim, 0),
      ),
    );
    // Logit difference (sparse seed, one pass per prompt) and mean log-prob (dense seed through the
    // unembedding, plus each prompt's own pass: twice as many passes).
    const metrics = [undefined, answerLogProbMetric(c.pairs.answers.answer)];
    for (const metric of metrics) {
      const dense = metric !== undefined;
      const opts = { ...c.pairs, targets: TARGETS, metric };
      released.stats.builds = 0;
      released.stats.peakHeld = 0;
      const a = attributionPatchingAll(mRelease, { ...opts, backwardCopies: "release" });
      const b = attributionPatchingAll(mKeep, { ...opts, backwardCopies: "keep" });
      assert.deepEqual(resultValues(a), resultValues(b));
      assert.ok(
        resultValues(a).some((v) => v.some((x) => x !== 0)),
        "the estimates are not all zero",
      );

      // Released: each projection's copy built once for all prompts, never more than one layer's held
      // at a time, none left.
      assert.equal(released.stats.builds, allBlockOps.length + (dense ? 1 : 0));
      assert.ok(
        released.stats.peakHeld <=
          Math.max(largestLayer, dense ? 4 * mKeep.cfg.dModel * mKeep.cfg.dVocab : 0),
      );
      assert.equal(backwardCopyBytes(mRelease), 0);
      // Kept: every projection's copy held after the call (and the unembedding's once a dense seed used it).
      const unembed = dense ? 4 * mKeep.cfg.dModel * mKeep.cfg.dVocab : 0;
      assert.equal(backwardCopyBytes(mKeep), blockBytes + unembed);
    }
    // Kept copies are reused: the second call built nothing new for the blocks.
    assert.equal(kept.stats.builds, allBlockOps.length + 1);
    mRelease.dispose();
    mKeep.dispose();
  });
}

for (const c of CASES) {
  test(`${c.name}: EAP-IG with released copies = kept, bit for bit; the MLP copies built once per group`, async () => {
    const released = countingKernels();
    const kept = countingKernels();
    const mRelease = c.load(released.kernels);
    const mKeep = c.load(kept.kernels);
    // Two lengths: two groups, each with its own backward passes.
    const { clean, corrupted, answers } = c.pairs;
    const pairs = {
      clean,
      corrupted,
      answer: clean.map(() => answers.answer),
      wrong: clean.map(() => answers.wrong),
    };
    const groups = new Set(clean.map((t) => t.length)).size;
    const a = await new CircuitTask(
      mRelease,
      { ...pairs },
      { backwardCopies: "release", passesTogether: 3 },
    ).gradientScores(3);
    const b = await new CircuitTask(mKeep, { ...pairs }, { backwardCopies: "keep" }).gradientScores(3);
    assert.deepEqual(a, b);
    assert.ok(
      a.some((x) => x !== 0),
      "the scores are not all zero",
    );
    // The edge backward uses the MLP's ops (attention reads its own copy of the head weights).
    const mlpOps = mKeep.cfg.nLayers * (mKeep.cfg.gatedMlp ? 3 : 2);
    assert.equal(released.stats.builds, groups * mlpOps);
    assert.equal(backwardCopyBytes(mRelease), 0);
    assert.equal(kept.stats.builds, mlpOps);
    assert.ok(backwardCopyBytes(mKeep) > 0);
    // Two steps together, then the third: the copies are built twice per group; the same scores.
    released.stats.builds = 0;
    const two = await new CircuitTask(
      mRelease,
      { ...pairs },
      { backwardCopies: "release", passesTogether: 2 },
    ).gradientScores(3);
    assert.deepEqual(two, b);
    assert.equal(released.stats.builds, 2 * groups * mlpOps);
    mRelease.dispose();
    mKeep.dispose();
  });
}

test("the rule: keep the copies while the weights are at most a quarter of the memory budget", () => {
  const model = HookedTransformer.fromCheckpoint(loadCheckpoint(FIXTURE_DIR), {
    backend: createOnnxKernels({ threads: 1 }),
  });
  const weightBytes = weightOps(model).reduce((s, op) => s + 4 * op.inDim * op.outDim, 0);
  assert.equal(releasesBackwardCopies(model, "keep"), false);
  assert.equal(releasesBackwardCopies(model, "release"), true);
  // No limit: this machine's free memory is far more than 4x a tiny model's weights.
  assert.equal(releasesBackwardCopies(model), false);
  // A limit at what the process already holds leaves no budget; one a gigabyte above, plenty.
  const rss = process.memoryUsage().rss;
  model.memoryLimit = rss;
  assert.equal(releasesBackwardCopies(model), true);
  model.memoryLimit = rss + 2 ** 30;
  assert.ok(weightBytes < 2 ** 28, "the fixture's weights are far below a quarter of a gigabyte");
  assert.equal(releasesBackwardCopies(model), false);
  // Passes run together: as many as fit in a tenth of the weights while the budget is ample, else fewer.
  assert.equal(passesTogether(model, weightBytes / 100), Math.floor(PASSES_MAX_WEIGHT_SHARE * 100));
  assert.equal(passesTogether(model, weightBytes), 1);
  model.memoryLimit = rss;
  assert.equal(passesTogether(model, weightBytes / 100), 1, "no budget: one at a time");
  model.dispose();
});
