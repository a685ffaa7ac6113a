import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  detectHeads,
  detectionPattern,
  patternScore,
  repeatedRandomTokens,
} from "../../src/analysis/head-detector.ts";
import { HookedTransformer } from "../../src/model/hooked-transformer.ts";
import { resolveProcessing } from "../../src/model/processing.ts";
import { getKernels } from "../../src/tensor/select-kernels.ts";
import { Tensor } from "../../src/tensor/tensor.ts";
import type { BlockWeights, ModelWeights } from "../../src/weights/canonical-weights.ts";
import type { ModelConfig } from "../../src/weights/config.ts";
import { gpt2Config } from "../../src/weights/families/gpt2.ts";

// Residual layout: [token one-hot | position one-hot | "previous token" one-hot].
const V = 20;
const P = 16;
const D = V + P + V;
const DH = 20;
const H = 2;
const C = 3; // query/key gain: makes the planted patterns sharp after LNPre's scaling

/**
 * A 2-layer attention-only model with an exact induction circuit planted by hand:
 * L0H0 attends to the previous position and copies its token into the "previous token" slots;
 * L1H0 matches the current token (query) against those slots (key), so it attends to the token after an
 * earlier copy of the current token. The other heads have zero weights (uniform attention, no output).
 */
function plantedInductionModel(): HookedTransformer {
  const cfg: ModelConfig = gpt2Config({
    nLayers: 2,
    nHeads: H,
    dModel: D,
    dHead: DH,
    dMlp: 4,
    nCtx: P,
    dVocab: V,
    lnEps: 1e-5,
    act: "gelu_new",
  });
  const z = (...shape: number[]) => Tensor.zeros(shape);
  const block = (): BlockWeights => ({
    ln1: null,
    W_Q: z(H, D, DH),
    W_K: z(H, D, DH),
    W_V: z(H, D, DH),
    b_Q: z(H, DH),
    b_K: z(H, DH),
    b_V: z(H, DH),
    W_O: z(H, DH, D),
    b_O: z(D),
    ln2: null,
    W_in: z(D, 4),
    W_gate: null,
    b_in: z(4),
    W_out: z(4, D),
    b_out: z(D),
  });
  const blocks = [block(), block()];
  const set = (t: Tensor, idx: number[], v: number) => {
    t.data[t.offset(...idx)] = v;
  };
  for (let p = 0; p < P; p++) {
    set(blocks[0].W_Q, [0, V + p, p], C); // query: "I am at position p"
    if (p + 1 < DH) set(blocks[0].W_K, [0, V + p, p + 1], C); // key: "I am what position p + 1 looks for"
  }
  for (let t = 0; t < V; t++) {
    set(blocks[0].W_V, [0, t, t], 1);
    set(blocks[0].W_O, [0, t, V + P + t], 1); // previous token -> its slot
    set(blocks[1].W_Q, [0, t, t], C); // current token
    set(blocks[1].W_K, [0, V + P + t, t], C); // token before the key position
    set(blocks[1].W_V, [0, t, t], 1);
    set(blocks[1].W_O, [0, t, t], 1);
  }
  const W_E = z(V, D);
  for (let t = 0; t < V; t++) set(W_E, [t, t], 1);
  const W_pos = z(P, D);
  for (let p = 0; p < P; p++) set(W_pos, [p, V + p], 1);
  const weights: ModelWeights = { W_E, W_pos, blocks, lnFinal: null, W_U: z(D, V), b_U: z(V) };
  return new HookedTransformer(
    cfg,
    weights,
    getKernels("reference"),
    resolveProcessing(undefined),
    "planted",
  );
}

describe("head detector", () => {
  it("detection patterns follow TransformerLens' definitions", () => {
    const toks = [5, 7, 5, 7];
    const at = (m: Float64Array, q: number, k: number) => m[q * 4 + k];
    const prev = detectionPattern("previous_token", toks);
    assert.deepEqual(
      [at(prev, 1, 0), at(prev, 2, 1), at(prev, 3, 2), at(prev, 2, 0), at(prev, 0, 0)],
      [1, 1, 1, 0, 0],
    );
    const dup = detectionPattern("duplicate_token", toks);
    assert.deepEqual([at(dup, 2, 0), at(dup, 3, 1), at(dup, 2, 2), at(dup, 0, 2)], [1, 1, 0, 0]);
    const ind = detectionPattern("induction", toks);
    // Query 2 (token 5) attends to position 1, the token after the earlier 5; query 3 to position 2.
    assert.deepEqual([at(ind, 2, 1), at(ind, 3, 2), at(ind, 2, 0), at(ind, 3, 1)], [1, 1, 0, 0]);
  });

  it("scores: mul = attention share on the pattern, abs = 1 - summed error / length", () => {
    const ideal = detectionPattern("previous_token", [1, 2, 3]);
    const uniform = Float64Array.from([1, 0, 0, 0.5, 0.5, 0, 1 / 3, 1 / 3, 1 / 3]);
    assert.ok(Math.abs(patternScore(uniform, ideal, 3) - (0.5 + 1 / 3) / 3) < 1e-12);
    // Excluding BOS drops column 0 from both sums (including query 1's previous-token target).
    assert.ok(
      Math.abs(patternScore(uniform, ideal, 3, { excludeBos: true }) - 1 / 3 / (0.5 + 2 / 3)) < 1e-12,
    );
    const absErr = 1 + 0.5 + 0.5 + 1 / 3 + 2 / 3 + 1 / 3;
    assert.ok(Math.abs(patternScore(uniform, ideal, 3, { errorMeasure: "abs" }) - (1 - absErr / 3)) < 1e-12);
  });

  it("a planted previous-token head and induction head score top on their detectors", () => {
    const model = plantedInductionModel();
    const seqs = repeatedRandomTokens({ nSeqs: 4, halfLength: 8, seed: 1, high: V });
    assert.equal(seqs[0].length, 16);
    assert.deepEqual(seqs[0].slice(0, 8), seqs[0].slice(8));
    const argmax = (s: Float64Array) => s.indexOf(Math.max(...s));
    const induction = detectHeads(model, seqs, "induction");
    const previous = detectHeads(model, seqs, "previous_token");
    assert.equal(argmax(induction), 1 * H + 0, `induction scores ${[...induction]}`);
    assert.equal(argmax(previous), 0, `previous-token scores ${[...previous]}`);
    // Sharp planted patterns: nearly all of L0H0's attention (after position 0) is on the previous token.
    assert.ok(previous[0] > 0.9, `previous-token score ${previous[0]}`);
    // L1H0 can only hit in the second half (the first half has no earlier copy): about half its mass.
    assert.ok(induction[H] > 0.4 && induction[H] > 3 * induction[1], `induction scores ${[...induction]}`);
  });
});
