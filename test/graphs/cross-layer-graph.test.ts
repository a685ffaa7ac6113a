/**
 * Attribution graphs over a cross-layer transcoder: the replacement run's errors and every adjacency entry
 * against the independent float64 linearised replacement model (test/helpers/linear-replacement.ts, where a
 * feature of layer l writes into every layer l' ≥ l), and the row identity, on a random three-layer
 * Qwen2-like model with a random JumpReLU CLT.
 */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { attributeGraph } from "../../src/graphs/attribute-graph.ts";
import { checkTopFeatures } from "../../src/graphs/graph-check.ts";
import { replacementRun } from "../../src/graphs/replacement-run.ts";
import { evaluateTranscoderSet } from "../../src/graphs/transcoder-eval.ts";
import type { TranscoderSet } from "../../src/graphs/transcoder-set.ts";
import type { HookedTransformer } from "../../src/model/hooked-transformer.ts";
import {
  assertEdgesMatchReference,
  assertRowIdentity,
  type RefGraph,
  referenceReplacementGraph,
  tinyModelWithCrossLayerTranscoder,
} from "../helpers/linear-replacement.ts";

const root = mkdtempSync(join(tmpdir(), "circuitscope-clt-graph-"));
after(() => rmSync(root, { recursive: true, force: true }));

const TOKENS = [1, 17, 300, 45, 9, 88];
const TARGETS = [300, 45];

let cached: { model: HookedTransformer; set: TranscoderSet; ref: RefGraph } | null = null;
function fixture() {
  if (cached) return cached;
  const { dir, model, set } = tinyModelWithCrossLayerTranscoder(root);
  cached = { model, set, ref: referenceReplacementGraph(dir, TOKENS, set, TARGETS) };
  return cached;
}

test("a CLT's replacement run: the same active features and error nodes as the float64 model's", () => {
  const { model, set, ref } = fixture();
  const run = replacementRun(model, TOKENS, set);
  assert.deepEqual(
    run.features.map((f) => `${f.layer}_${f.feature}_${f.pos}`),
    ref.features.map((f) => `${f.layer}_${f.feature}_${f.pos}`),
  );
  assert.ok(new Set(run.features.map((f) => f.layer)).size === 3, "features on every layer");
  // Errors from the reference's nothing-on/everything-on runs are not exposed; check instead that errors +
  // reconstruction (every earlier layer's writes) give the real MLP output, recomputed here in float64.
  const L = 3;
  const D = model.cfg.dModel;
  const P = TOKENS.length;
  let worst = 0;
  for (let l = 0; l < L; l++) {
    const y = run.cache.get(`blocks.${l}.hook_mlp_out`).data;
    // BOS (position 0) has no error node: circuit-tracer's zero_positions (a constant of the linearised model)
    for (let d = 0; d < D; d++) assert.equal(run.errors[l * P * D + d], 0);
    for (let p = 1; p < P; p++) {
      for (let d = 0; d < D; d++) {
        let recon = set.transcoders[l].bDec[d];
        for (const f of run.features) {
          if (f.pos !== p || f.layer > l) continue;
          const nOut = L - f.layer;
          recon += f.activation * set.transcoders[f.layer].wDec[(f.feature * nOut + (l - f.layer)) * D + d];
        }
        const got = run.errors[(l * P + p) * D + d] + recon;
        worst = Math.max(worst, Math.abs(got - y[p * D + d]));
      }
    }
  }
  assert.ok(worst < 1e-4, `largest |error + reconstruction − mlp_out| ${worst}`);
});

test("every adjacency entry of a CLT graph equals the float64 linearised replacement model's", async () => {
  const { model, set, ref } = fixture();
  const { graph } = await attributeGraph(model, TOKENS, set, { targets: TARGETS, batchSize: 4 });
  assertEdgesMatchReference(graph, ref, TARGETS);
});

test("row identity over a CLT: incoming edges + constant terms = the pre-activation or demeaned logit", async () => {
  const { model, set, ref } = fixture();
  assertRowIdentity(
    await attributeGraph(model, TOKENS, set, { targets: TARGETS, batchSize: 64 }),
    set,
    ref,
    TARGETS,
  );
});

test("checked in the real model with the CLT spliced in (frozen): a small edit moves the logit as the graph predicts", async () => {
  const { model, set } = fixture();
  const attributed = await attributeGraph(model, TOKENS, set, { targets: TARGETS });
  // A 1 % change keeps every downstream feature on the same side of its threshold, so the spliced, frozen
  // model is linear in it and the measured change is the graph's total prediction (through every path).
  const checks = checkTopFeatures(model, set, attributed, { top: 4, scale: 0.99, freeze: true });
  assert.equal(checks.length, 4);
  assert.ok(
    checks.some((c) => attributed.graph.features[c.index].layer < 2),
    "a feature that writes across layers is among them",
  );
  for (const c of checks) {
    assert.ok(Math.abs(c.predictedTotal) > 1e-4, `${c.nodeId}: prediction ${c.predictedTotal}`);
    assert.ok(
      Math.abs(c.measured - c.predictedTotal) < 1e-3 * Math.abs(c.predictedTotal) + 1e-5,
      `${c.nodeId}: measured ${c.measured}, predicted ${c.predictedTotal}`,
    );
  }
});

test("transcoders eval refuses a CLT by name (its metrics are per layer) before any work", async () => {
  const { model, set } = fixture();
  await assert.rejects(
    evaluateTranscoderSet(model, set, ["Once upon a time"]),
    /transcoders eval supports per-layer transcoder sets only, not a cross-layer transcoder/,
  );
});
