/**
 * Pythia-70m's real shape (6 layers, d_model 512, 8 heads, vocabulary 50304, untied embed_out) as a random
 * F16 checkpoint: it loads, and one forward's last logits equal a plain float64 computation of ln_final and
 * embed_out from the run's own final residual. The larger Pythia shapes: bench/pythia-shapes.ts.
 */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { HookedTransformer } from "../../src/model/hooked-transformer.ts";
import { loadCheckpoint, makeRandomCheckpoint } from "../../src/weights/checkpoint.ts";
import { PYTHIA_SHAPES } from "../../src/weights/families/gpt-neox.ts";
import { parseHfConfig } from "../../src/weights/families/index.ts";
import { readHfTensors } from "../helpers/llama-reference.ts";

const dir = mkdtempSync(join(tmpdir(), "circuitscope-pythia-"));
after(() => rmSync(dir, { recursive: true, force: true }));

test("pythia-70m's shape: loads and runs; logits = float64 ln_final · embed_out of the final residual", () => {
  const config = parseHfConfig(PYTHIA_SHAPES["pythia-70m"], "pythia-70m");
  assert.deepEqual(
    [config.nLayers, config.dModel, config.nHeads, config.dHead, config.rotary?.dim],
    [6, 512, 8, 64, 16],
  );
  makeRandomCheckpoint(dir, config, { seed: 3, dtype: "F16" });
  const model = HookedTransformer.fromCheckpoint(loadCheckpoint(dir), { processing: false });
  try {
    const tokens = [1, 5000, 20, 50000, 7];
    const { cache, logits } = model.runWithCache([tokens], {
      namesFilter: (n) => n === "blocks.5.hook_resid_post",
    });
    const V = 50304;
    const D = 512;
    const P = tokens.length;
    assert.deepEqual(logits!.shape, [1, P, V]);
    const t = readHfTensors(dir);
    const x = cache.get("blocks.5.hook_resid_post").data.subarray((P - 1) * D, P * D);
    const mean = x.reduce((s, v) => s + v, 0) / D;
    const sd = Math.sqrt(x.reduce((s, v) => s + (v - mean) ** 2, 0) / D + 1e-5);
    const g = t.get("gpt_neox.final_layer_norm.weight")!.data;
    const b = t.get("gpt_neox.final_layer_norm.bias")!.data;
    const y = Array.from(x, (v, d) => ((v - mean) / sd) * g[d] + b[d]);
    const W = t.get("embed_out.weight")!.data;
    let worst = 0;
    for (let v = 0; v < V; v += 97) {
      let s = 0;
      for (let d = 0; d < D; d++) s += y[d] * W[v * D + d];
      worst = Math.max(worst, Math.abs(logits!.data[(P - 1) * V + v] - s));
    }
    assert.ok(worst < 1e-4, `last logits differ by ${worst}`);
  } finally {
    model.dispose();
  }
});
