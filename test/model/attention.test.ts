/**
 * The one attention module: mask (causal, sliding window), score transform (scale, soft-cap), softmax and
 * the backward, against float64 computations written from the definitions.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import {
  attentionBackward,
  type CausalMask,
  frozenValueBackward,
  headScores,
  maskScores,
  type ScoreTransform,
  softmaxRows,
} from "../../src/model/attention.ts";
import { getKernels } from "../../src/tensor/select-kernels.ts";
import { mulberry32, randn } from "../../src/util/random.ts";

const rng = mulberry32(7);
const vec = (n: number) => Float32Array.from({ length: n }, () => randn(rng));
const B = 2;
const P = 5;
const H = 4;
const Hkv = 2;
const dh = 3;

/** Attention in float64 from its definition: z [B, P, H, dh], and the pattern [B, H, P, P]. */
function attention64(
  x: { q: Float64Array; k: Float64Array; v: Float64Array },
  t: ScoreTransform,
  window: number | null,
) {
  const z = new Float64Array(B * P * H * dh);
  const pattern = new Float64Array(B * H * P * P);
  for (let b = 0; b < B; b++)
    for (let h = 0; h < H; h++) {
      const g = Math.floor(h / (H / Hkv));
      for (let i = 0; i < P; i++) {
        const s: number[] = [];
        for (let j = 0; j < P; j++) {
          const seen = j <= i && (window === null || i - j < window);
          let dot = 0;
          for (let e = 0; e < dh; e++)
            dot += x.q[((b * P + i) * H + h) * dh + e] * x.k[((b * P + j) * Hkv + g) * dh + e];
          let sc = dot * t.scale;
          if (t.softCap !== null) sc = t.softCap * Math.tanh(sc / t.softCap);
          s.push(seen ? sc : Number.NEGATIVE_INFINITY);
        }
        const max = Math.max(...s);
        const e = s.map((v) => Math.exp(v - max));
        const sum = e.reduce((a, v) => a + v, 0);
        for (let j = 0; j < P; j++) {
          const p = e[j] / sum;
          pattern[((b * H + h) * P + i) * P + j] = p;
          for (let d = 0; d < dh; d++)
            z[((b * P + i) * H + h) * dh + d] += p * x.v[((b * P + j) * Hkv + g) * dh + d];
        }
      }
    }
  return { z, pattern };
}

const transforms: [string, ScoreTransform][] = [
  ["1/sqrt(dh)", { scale: 1 / Math.sqrt(dh), softCap: null }],
  ["soft-capped at 1.5", { scale: 1 / Math.sqrt(dh), softCap: 1.5 }],
];

for (const [label, t] of transforms)
  for (const window of [null, 2]) {
    test(`scores and softmax (${label}, window ${window}) match the float64 definition; masked keys get 0`, () => {
      const kernels = getKernels("reference");
      // One head, one batch element, heads-first: [1, P, dh] queries and keys.
      const q = vec(P * dh);
      const k = vec(P * dh);
      const mask: CausalMask = { queries: P, firstQuery: 0, window };
      const scores = headScores(kernels, q, k, { n: 1, queries: P, keys: P, dHead: dh, mask, transform: t });
      const fresh = softmaxRows(scores, { rows: P, keys: P, mask: null });
      const skipping = softmaxRows(scores, { rows: P, keys: P, mask });
      // Head 0 of batch element 0 of the float64 reference carries q and k (the rest is zero).
      const want = attention64(
        {
          q: Float64Array.from({ length: B * P * H * dh }, (_, i) => {
            const h = Math.floor(i / dh) % H;
            const p = Math.floor(i / (H * dh)) % P;
            return h === 0 ? q[p * dh + (i % dh)] : 0;
          }),
          k: Float64Array.from({ length: B * P * Hkv * dh }, (_, i) => {
            const g = Math.floor(i / dh) % Hkv;
            const p = Math.floor(i / (Hkv * dh)) % P;
            return g === 0 ? k[p * dh + (i % dh)] : 0;
          }),
          v: new Float64Array(B * P * Hkv * dh),
        },
        t,
        window,
      ).pattern;
      for (let i = 0; i < P; i++)
        for (let j = 0; j < P; j++) {
          const w = want[i * P + j];
          assert.ok(Math.abs(fresh[i * P + j] - w) < 1e-6, `[${i}, ${j}] ${fresh[i * P + j]} vs ${w}`);
          assert.equal(skipping[i * P + j], fresh[i * P + j], "masked softmax skips -inf exactly");
          if (w === 0) assert.equal(fresh[i * P + j], 0);
        }
      // In place over the scores: the same pattern, masked entries 0 (not -inf).
      const same = scores.slice();
      softmaxRows(same, { rows: P, keys: P, mask, into: same });
      assert.deepEqual(same, fresh);
      // The transform is applied only where the key is seen.
      const raw = kernels.bmm(q, k, 1, P, dh, P, true);
      maskScores(raw, { rows: P, keys: P, mask, transform: t });
      assert.deepEqual(raw, scores);
    });
  }

/** Σ gZ · z of float64 attention, for finite differences. */
function loss(x: { q: Float64Array; k: Float64Array; v: Float64Array }, gZ: Float32Array, t: ScoreTransform) {
  return attention64(x, t, null).z.reduce((a, v, i) => a + v * gZ[i], 0);
}

for (const [label, t] of transforms)
  for (const frozen of [false, true]) {
    test(`attentionBackward (${label}${frozen ? ", frozen pattern" : ""}) matches finite differences`, () => {
      const q = vec(B * P * H * dh);
      const k = vec(B * P * Hkv * dh);
      const v = vec(B * P * Hkv * dh);
      const gZ = vec(B * P * H * dh);
      const x64 = { q: Float64Array.from(q), k: Float64Array.from(k), v: Float64Array.from(v) };
      const ref = attention64(x64, t, null);
      const pattern = Float32Array.from(ref.pattern);
      // The scores after the transform, [B, H, P, P] (read for the soft-cap's derivative).
      const scores = new Float32Array(B * H * P * P);
      for (let b = 0; b < B; b++)
        for (let h = 0; h < H; h++)
          for (let i = 0; i < P; i++)
            for (let j = 0; j <= i; j++) {
              let dot = 0;
              const g = Math.floor(h / (H / Hkv));
              for (let e = 0; e < dh; e++)
                dot += q[((b * P + i) * H + h) * dh + e] * k[((b * P + j) * Hkv + g) * dh + e];
              const s = dot * t.scale;
              scores[((b * H + h) * P + i) * P + j] =
                t.softCap === null ? s : t.softCap * Math.tanh(s / t.softCap);
            }
      const got = attentionBackward({
        q,
        k,
        v,
        pattern,
        gZ,
        B,
        P,
        H,
        Hkv,
        dh,
        transform: t,
        scores,
        frozenPattern: frozen,
      });
      const step = 1e-5;
      // Frozen: the loss is Σ gZ · (pattern @ v) with the pattern held; only v moves it.
      const frozenLoss = (x: typeof x64) => {
        let s = 0;
        for (let b = 0; b < B; b++)
          for (let h = 0; h < H; h++)
            for (let i = 0; i < P; i++)
              for (let j = 0; j < P; j++)
                for (let d = 0; d < dh; d++)
                  s +=
                    ref.pattern[((b * H + h) * P + i) * P + j] *
                    x.v[((b * P + j) * Hkv + Math.floor(h / (H / Hkv))) * dh + d] *
                    gZ[((b * P + i) * H + h) * dh + d];
        return s;
      };
      const f = frozen ? frozenLoss : (x: typeof x64) => loss(x, gZ, t);
      for (const [which, g] of [
        ["q", got.gQ],
        ["k", got.gK],
        ["v", got.gV],
      ] as const) {
        for (let i = 0; i < g.length; i++) {
          const up = { ...x64, [which]: Float64Array.from(x64[which]) };
          const down = { ...x64, [which]: Float64Array.from(x64[which]) };
          up[which][i] += step;
          down[which][i] -= step;
          const fd = (f(up) - f(down)) / (2 * step);
          assert.ok(Math.abs(g[i] - fd) < 1e-4 * (1 + Math.abs(fd)), `${which}[${i}]: ${g[i]} vs ${fd}`);
        }
      }
      if (frozen) assert.ok(got.gScores.every((x) => x === 0));
      // d/d pattern is gZ · v whether or not the pattern is frozen.
      let gp = 0;
      for (let e = 0; e < dh; e++) gp += gZ[e] * v[e]; // b 0, h 0 (kv head 0), query 0, key 0
      assert.ok(Math.abs(got.gPattern[0] - gp) < 1e-5);
    });
  }

test("frozenValueBackward: rows sharing one frozen pattern get attentionBackward's frozen d/d v (GQA 4/2, both kernels)", () => {
  const [B, P, H, Hkv, dh] = [3, 5, 4, 2, 3];
  // a causal pattern of one prompt: softmax of random scores over the keys each query sees
  const pattern = new Float32Array(H * P * P);
  for (let h = 0; h < H; h++)
    for (let i = 0; i < P; i++) {
      const e = Array.from({ length: i + 1 }, () => Math.exp(randn(rng)));
      const sum = e.reduce((x, y) => x + y, 0);
      e.forEach((x, j) => {
        pattern[(h * P + i) * P + j] = x / sum;
      });
    }
  const gZ = vec(B * P * H * dh);
  const v = vec(P * Hkv * dh);
  const none = new Float32Array(0);
  for (const name of ["reference", "onnx"] as const) {
    const got = frozenValueBackward(getKernels(name), { pattern, gZ, B, P, H, Hkv, dh });
    assert.equal(got.length, B * P * Hkv * dh);
    for (let b = 0; b < B; b++) {
      const want = attentionBackward({
        q: none,
        k: none,
        v,
        pattern,
        gZ: gZ.subarray(b * P * H * dh, (b + 1) * P * H * dh),
        B: 1,
        P,
        H,
        Hkv,
        dh,
        frozenPattern: true,
      }).gV;
      want.forEach((w, i) => {
        const g = got[b * P * Hkv * dh + i];
        assert.ok(Math.abs(g - w) < 1e-5 * (1 + Math.abs(w)), `${name} row ${b} [${i}]: ${g} vs ${w}`);
      });
    }
  }
});
