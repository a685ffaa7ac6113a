/**
 * Circuits hold each block's attention weights per head (their own layout); while they do, the kernels'
 * copies are dropped and rebuilt from those exactly when the model next runs. So the model is held once,
 * and nothing it computes changes.
 */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { CircuitTask } from "../../src/circuits/circuit-task.ts";
import { blockOps } from "../../src/model/block-ops.ts";
import { HookedTransformer } from "../../src/model/hooked-transformer.ts";
import type { KernelName } from "../../src/tensor/kernels.ts";
import { collectGarbage } from "../../src/util/collect-garbage.ts";
import { makeRandomCheckpoint } from "../../src/weights/checkpoint.ts";
import { gpt2Config } from "../../src/weights/families/gpt2.ts";
import { FIXTURE_DIR, REPO_ROOT } from "../helpers/fixture.ts";

const STORIES = `${REPO_ROOT}/models/stories260k`;

function attentionBytes(model: HookedTransformer): number {
  let bytes = 0;
  for (let l = 0; l < model.cfg.nLayers; l++) {
    const ops = blockOps(model, l);
    bytes += ops.qkv.weightBytes + ops.o.weightBytes;
  }
  return bytes;
}

const FIELDS = ["W_Q", "W_K", "W_V", "W_O"] as const;

async function check(dir: string, backend: KernelName, prompt: string): Promise<void> {
  const model = await HookedTransformer.fromPretrained(dir, { backend });
  try {
    const tokens = model.toTokens(prompt);
    const logits = model.run(prompt).data;
    const views = model.weights.blocks.map((b) => FIELDS.map((f) => b[f].data.slice()));
    const held = attentionBytes(model);
    assert.ok(held > 0);
    const corrupted = tokens.map((t, i) => (i === 1 ? (t + 1) % model.cfg.dVocab : t));
    const task = new CircuitTask(model, { clean: [tokens], corrupted: [corrupted], answer: [3], wrong: [5] });
    assert.equal(attentionBytes(model), 0, `${dir} ${backend}: the kernels' attention copies are dropped`);
    // While lent, the weights read through the model are still the model's.
    for (const [l, b] of model.weights.blocks.entries())
      for (const [i, f] of FIELDS.entries()) assert.deepEqual(b[f].data, views[l][i], `${f} ${l}`);
    const score = task.evaluate(new Float32Array(task.graph.nEdges).fill(1));
    // The model runs as before (its copies rebuilt), bit for bit; the task still works.
    assert.deepEqual(model.run(prompt).data, logits, `${dir} ${backend}: logits after`);
    assert.equal(attentionBytes(model), held);
    assert.equal(task.evaluate(new Float32Array(task.graph.nEdges).fill(1)), score);

    // Disposed, a task gives the weights back at once (before the model runs) and can no longer be used.
    const second = new CircuitTask(model, {
      clean: [tokens],
      corrupted: [corrupted],
      answer: [3],
      wrong: [5],
    });
    assert.equal(attentionBytes(model), 0);
    second.dispose();
    assert.equal(attentionBytes(model), held, `${dir} ${backend}: given back by dispose`);
    assert.deepEqual(model.run(prompt).data, logits, `${dir} ${backend}: logits after dispose`);
    assert.throws(() => second.evaluate(new Float32Array(task.graph.nEdges).fill(1)), /disposed/);
    await assert.rejects(second.gradientScores(1), /disposed/);
  } finally {
    model.dispose();
  }
}

test("GPT-2 (onnx, reference): attention weights lent to circuits and given back exactly", async () => {
  await check(FIXTURE_DIR, "onnx", "We're helping our friend while they");
  await check(FIXTURE_DIR, "reference", "We're helping our friend while they");
});

test("stories260k (grouped key/value heads, rotary): lent and given back exactly", async () => {
  await check(STORIES, "onnx", "Once upon a time there was a little girl");
});

test("a disposed task lets its own copies of the attention weights go (onnx: none left in JavaScript)", async () => {
  const root = mkdtempSync(join(tmpdir(), "cs-circuit-weights-"));
  after(() => rmSync(root, { recursive: true, force: true }));
  // 4 layers of 1 MB of attention weights each: large against everything else the task keeps.
  const shape = { nLayers: 4, nHeads: 8, dModel: 256, dHead: 32, dMlp: 256, nCtx: 16, dVocab: 300 };
  makeRandomCheckpoint(root, gpt2Config({ ...shape, lnEps: 1e-5, act: "gelu_new" }), { seed: 9 });
  const model = await HookedTransformer.fromPretrained(root, { backend: "onnx" });
  try {
    const held = attentionBytes(model);
    model.run([[1, 2, 3, 4]]);
    // The task reads the weights through the views, whose cache of recent reads is the model's.
    for (const b of model.weights.blocks) for (const f of FIELDS) b[f].data;
    collectGarbage();
    const before = process.memoryUsage().arrayBuffers;
    const task = new CircuitTask(model, {
      clean: [[1, 2, 3, 4]],
      corrupted: [[1, 5, 3, 4]],
      answer: [3],
      wrong: [5],
    });
    collectGarbage();
    const during = process.memoryUsage().arrayBuffers - before;
    assert.ok(during >= held, `while the task lives it holds the weights (${during} of ${held} B)`);
    task.dispose();
    collectGarbage();
    const left = process.memoryUsage().arrayBuffers - before;
    assert.ok(left < held / 4, `after dispose ${left} B are left of the ${held} B of attention weights`);
  } finally {
    model.dispose();
  }
});
