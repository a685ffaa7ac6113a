/**
 * Pruning and the graph scores against (1) a graph computed by hand and (2) an independent float64
 * implementation written here: Â materialised, influence as w·((I − Â)⁻¹ − I) by Gaussian elimination (not a
 * power series), find_threshold by binary search, and prune_graph's clean-up with its old-mask loop.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { type AttributionGraph, nodeRanges } from "../../src/graphs/attribution-graph.ts";
import {
  cumulativeShares,
  findThreshold,
  graphScores,
  pruneGraph,
  seriesInfluence,
} from "../../src/graphs/prune.ts";
import { randomGraph } from "../helpers/random-graph.ts";

// ---- the hand graph: 1 layer, 2 positions, one feature at (layer 0, pos 1, feature 3) ----
// nodes: 0 f, 1 err(0,0), 2 err(0,1), 3 E0, 4 E1, 5 logit (p = 0.6)
function handGraph(): AttributionGraph {
  const n = 6;
  const A = new Float32Array(n * n);
  const set = (t: number, s: number, v: number) => {
    A[t * n + s] = v;
  };
  set(0, 3, 1);
  set(0, 4, 3);
  set(5, 0, 2);
  set(5, 2, -1);
  set(5, 4, 1);
  return {
    nLayers: 1,
    inputTokens: [7, 9],
    features: [{ layer: 0, pos: 1, feature: 3, activation: 1.5 }],
    logitTokens: [11],
    logitProbabilities: [0.6],
    adjacency: A,
  };
}

test("hand graph: influence, both scores and the cumulative shares are the values worked out by hand", () => {
  const g = handGraph();
  const w = new Float64Array([0, 0, 0, 0, 0, 0.6]);
  // Â rows: f = [.25 E0, .75 E1]; logit = [.5 f, .25 err01, .25 E1]. w·Â = f .3, err01 .15, E1 .15;
  // w·Â² = E0 .075, E1 .225.
  const influence = seriesInfluence(g.adjacency, 6, w);
  const expected = [0.3, 0, 0.15, 0.075, 0.375, 0];
  for (const [i, v] of expected.entries()) {
    assert.ok(Math.abs(influence[i] - v) < 1e-7, `node ${i}: ${influence[i]} vs ${v}`);
  }
  const scores = graphScores(g);
  // tokens .45, errors .15; completeness = (.3 + .15 + .075 + .375 + .75·.6) / 1.5
  assert.ok(Math.abs(scores.replacementScore - 0.75) < 1e-7, String(scores.replacementScore));
  assert.ok(Math.abs(scores.completenessScore - 0.9) < 1e-7, String(scores.completenessScore));
  const shares = pruneGraph(g).cumulativeScores;
  // high to low: E1 .375, f .3, err01 .15, E0 .075, then the zeros (share 1)
  for (const [i, v] of [0.675 / 0.9, 1, 0.825 / 0.9, 1, 0.375 / 0.9, 1].entries()) {
    assert.ok(Math.abs(shares[i] - v) < 1e-7, `share ${i}: ${shares[i]} vs ${v}`);
  }
});

test("hand graph: the node threshold drops the uninfluential error, the edge threshold the weak edges, then the clean-up", () => {
  const g = handGraph();
  // Node influences .375 .3 .15 .075 of .9: 0.8 is first reached at .15, so err(0,0) (0) goes.
  const r = pruneGraph(g, { nodeThreshold: 0.8, edgeThreshold: 0.98 });
  assert.deepEqual([...r.nodeMask], [1, 0, 1, 1, 1, 1]);
  // Edge scores .3 (f→logit) .225 (E1→f) .15 .15 .075 (E0→f): 0.98 keeps all five.
  assert.equal(
    r.edgeMask.reduce((a, b) => a + b, 0),
    5,
  );
  // 0.7 is reached at .15: E0→f (.075) goes, f keeps E1 as input.
  const r2 = pruneGraph(g, { nodeThreshold: 0.8, edgeThreshold: 0.7 });
  assert.equal(r2.edgeMask[0 * 6 + 3], 0);
  assert.equal(r2.edgeMask[0 * 6 + 4], 1);
  assert.deepEqual([...r2.nodeMask], [1, 0, 1, 1, 1, 1]);
  // 0.3 keeps only f→logit: f has no input left and the error no output, so both go, and with f gone its edge.
  const r3 = pruneGraph(g, { nodeThreshold: 0.8, edgeThreshold: 0.3 });
  assert.deepEqual([...r3.nodeMask], [0, 0, 0, 1, 1, 1]);
  assert.equal(
    r3.edgeMask.reduce((a, b) => a + b, 0),
    0,
  );
});

test("findThreshold: the score where the high-to-low cumulative share first reaches the threshold", () => {
  assert.equal(findThreshold([1, 4, 2, 3], 0.4), 4);
  assert.equal(findThreshold([1, 4, 2, 3], 0.41), 3);
  assert.equal(findThreshold([1, 4, 2, 3], 0.7), 3);
  assert.equal(findThreshold([1, 4, 2, 3], 1), 1);
  // zeros at the end of the order are reached only when the threshold is past every non-zero share
  assert.equal(findThreshold([1, 1], 1, 3), 1);
  assert.equal(findThreshold([1, 1], 1.5, 3), 0);
});

test("pruneGraph refuses thresholds outside [0, 1] and inconsistent graphs", () => {
  assert.throws(
    () => pruneGraph(handGraph(), { nodeThreshold: 1.2 }),
    /node threshold must be between 0 and 1/,
  );
  assert.throws(
    () => pruneGraph(handGraph(), { edgeThreshold: -0.1 }),
    /edge threshold must be between 0 and 1/,
  );
  const unsorted = handGraph();
  unsorted.features = [
    { layer: 0, pos: 1, feature: 3, activation: 1 },
    { layer: 0, pos: 0, feature: 3, activation: 1 },
  ];
  unsorted.adjacency = new Float32Array(49);
  assert.throws(() => pruneGraph(unsorted), /sorted by \(layer, pos, feature\)/);
  const short = handGraph();
  short.adjacency = new Float32Array(30);
  assert.throws(() => pruneGraph(short), /adjacency has 30 entries but 6 nodes/);
});

// ---- the independent float64 reference ----

function normalise(A: Float32Array, n: number): Float64Array[] {
  return Array.from({ length: n }, (_, i) => {
    const row = Float64Array.from(A.subarray(i * n, (i + 1) * n), Math.abs);
    const sum = row.reduce((a, b) => a + b, 0);
    return row.map((v) => v / Math.max(sum, 1e-10));
  });
}

/** w·((I − M)⁻¹ − I): solve (I − M)ᵀ x = w for x = (I − M)⁻ᵀ w, then subtract w. */
function influenceByInverse(M: Float64Array[], w: Float64Array): Float64Array {
  const n = w.length;
  // augmented [ (I − M)ᵀ | w ]
  const a = Array.from({ length: n }, (_, i) => {
    const row = new Float64Array(n + 1);
    for (let j = 0; j < n; j++) row[j] = (i === j ? 1 : 0) - M[j][i];
    row[n] = w[i];
    return row;
  });
  for (let c = 0; c < n; c++) {
    let p = c;
    for (let r = c + 1; r < n; r++) if (Math.abs(a[r][c]) > Math.abs(a[p][c])) p = r;
    [a[c], a[p]] = [a[p], a[c]];
    for (let r = 0; r < n; r++) {
      if (r === c) continue;
      const f = a[r][c] / a[c][c];
      if (f !== 0) for (let k = c; k <= n; k++) a[r][k] -= f * a[c][k];
    }
  }
  return Float64Array.from({ length: n }, (_, i) => a[i][n] / a[i][i] - w[i]);
}

function refThreshold(scores: ArrayLike<number>, threshold: number): number {
  const sorted = Array.from(scores).sort((x, y) => y - x);
  const total = sorted.reduce((a, b) => a + b, 0);
  const cum: number[] = [];
  let c = 0;
  for (const s of sorted) {
    c += s;
    cum.push(c / total);
  }
  // torch.searchsorted (left): the first index whose value is ≥ threshold
  let lo = 0;
  let hi = cum.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (cum[mid] < threshold) lo = mid + 1;
    else hi = mid;
  }
  return sorted[Math.min(lo, sorted.length - 1)];
}

function refWeights(g: AttributionGraph): Float64Array {
  const r = nodeRanges(g);
  const w = new Float64Array(r.nNodes);
  g.logitProbabilities.forEach((p, k) => {
    w[r.logitStart + k] = p;
  });
  return w;
}

function refPrune(g: AttributionGraph, nodeThreshold: number, edgeThreshold: number) {
  const r = nodeRanges(g);
  const n = r.nNodes;
  const w = refWeights(g);
  const influence = influenceByInverse(normalise(g.adjacency, n), w);
  const cut = refThreshold(influence, nodeThreshold);
  const nodeMask = Array.from(influence, (v, i) => i >= r.tokenStart || v >= cut);
  const pruned = Float32Array.from(g.adjacency, (v, k) =>
    nodeMask[Math.floor(k / n)] && nodeMask[k % n] ? v : 0,
  );
  const M = normalise(pruned, n);
  const prunedInfluence = influenceByInverse(M, w);
  const scores = M.flatMap((row, i) => Array.from(row, (v) => Math.fround(v * (prunedInfluence[i] + w[i]))));
  const edgeCut = refThreshold(scores, edgeThreshold);
  const edgeMask = scores.map((s) => s >= edgeCut);
  const update = () => {
    for (let i = 0; i < r.tokenStart; i++) {
      let out = false;
      for (let t = 0; t < n; t++) out ||= edgeMask[t * n + i];
      nodeMask[i] &&= out;
    }
    for (let i = 0; i < r.nFeatures; i++) {
      let inc = false;
      for (let s = 0; s < n; s++) inc ||= edgeMask[i * n + s];
      nodeMask[i] &&= inc;
    }
  };
  let old = [...nodeMask];
  update();
  while (nodeMask.some((v, i) => v !== old[i])) {
    old = [...nodeMask];
    for (let i = 0; i < n; i++) {
      if (nodeMask[i]) continue;
      for (let j = 0; j < n; j++) {
        edgeMask[i * n + j] = false;
        edgeMask[j * n + i] = false;
      }
    }
    update();
  }
  // replacement and completeness scores, as compute_graph_scores
  const N = normalise(g.adjacency, n);
  let tok = 0;
  let err = 0;
  for (let i = r.tokenStart; i < r.logitStart; i++) tok += influence[i];
  for (let i = r.errorStart; i < r.tokenStart; i++) err += influence[i];
  let num = 0;
  let den = 0;
  for (let i = 0; i < n; i++) {
    let e = 0;
    for (let j = r.errorStart; j < r.tokenStart; j++) e += N[i][j];
    num += (1 - e) * (influence[i] + w[i]);
    den += influence[i] + w[i];
  }
  return { influence, nodeMask, edgeMask, replacement: tok / (tok + err), completeness: num / den };
}

test("random graphs: masks, influence and both scores equal the independent float64 implementation", () => {
  const cases = [
    { seed: 1, nLayers: 3, nPos: 4, nFeatures: 20, nLogits: 3, nodeThreshold: 0.8, edgeThreshold: 0.98 },
    { seed: 2, nLayers: 4, nPos: 5, nFeatures: 40, nLogits: 2, nodeThreshold: 0.6, edgeThreshold: 0.9 },
    { seed: 3, nLayers: 2, nPos: 6, nFeatures: 30, nLogits: 5, nodeThreshold: 0.5, edgeThreshold: 0.5 },
    { seed: 4, nLayers: 5, nPos: 3, nFeatures: 25, nLogits: 1, nodeThreshold: 0.95, edgeThreshold: 0.7 },
  ];
  for (const c of cases) {
    const g = randomGraph(c.seed, c.nLayers, c.nPos, c.nFeatures, c.nLogits);
    const ref = refPrune(g, c.nodeThreshold, c.edgeThreshold);
    const got = pruneGraph(g, c);
    const n = nodeRanges(g).nNodes;
    for (let i = 0; i < n; i++) {
      assert.ok(
        Math.abs(got.nodeInfluence[i] - ref.influence[i]) < 1e-9 * (1 + ref.influence[i]),
        `seed ${c.seed} influence ${i}`,
      );
    }
    assert.deepEqual(Array.from(got.nodeMask, Boolean), ref.nodeMask, `seed ${c.seed} node mask`);
    assert.deepEqual(Array.from(got.edgeMask, Boolean), ref.edgeMask, `seed ${c.seed} edge mask`);
    const kept = ref.nodeMask.filter(Boolean).length;
    // some features or errors were dropped and some kept beside the always-kept tokens and logits
    assert.ok(kept < n && kept > n - nodeRanges(g).tokenStart, `seed ${c.seed}: pruning did something`);
    const scores = graphScores(g);
    assert.ok(Math.abs(scores.replacementScore - ref.replacement) < 1e-9, `seed ${c.seed} replacement`);
    assert.ok(Math.abs(scores.completenessScore - ref.completeness) < 1e-9, `seed ${c.seed} completeness`);
    // cumulative shares: monotone in the influence, the largest is 1
    const shares = cumulativeShares(ref.influence);
    for (let i = 0; i < n; i++) assert.ok(Math.abs(got.cumulativeScores[i] - shares[i]) < 1e-9);
  }
});

test("cumulativeShares: each node's share is the total of the scores at least its own over the whole", () => {
  const s = cumulativeShares(new Float64Array([1, 3, 0, 4, 2]));
  assert.deepEqual(
    Array.from(s, (v) => Math.round(v * 10) / 10),
    [1, 0.7, 1, 0.4, 0.9],
  );
});

test("seriesInfluence refuses a cycle instead of looping forever", () => {
  const A = new Float32Array([0, 1, 1, 0]);
  assert.throws(() => seriesInfluence(A, 2, new Float64Array([1, 0])), /did not vanish after 1000 terms/);
});
