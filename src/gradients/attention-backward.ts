/**
 * Backward of one attention layer from d/d z, following the forward in src/model/forward.ts:
 * scores[b,h,i,j] = q[b,i,h]·k[b,j,g(h)] / sqrt(dh) for j ≤ i (−inf above the diagonal),
 * pattern = softmax over j, z[b,i,h] = Σ_j pattern[b,h,i,j] v[b,j,g(h)], where g(h) = floor(h / (H / Hkv))
 * is the key/value head query head h reads (grouped-query attention; g(h) = h when Hkv = H).
 * q and k are what the scores read: after rotation for rotary models. Each gradient is w.r.t. that hook's
 * activation as TransformerLens defines it; a key/value head's gradient sums over the query heads sharing it.
 */
export interface AttentionGrads {
  gPattern: Float32Array; // [B, H, P, P]
  gScores: Float32Array; // [B, H, P, P]; 0 at masked entries (the softmax gives them no weight)
  gQ: Float32Array; // [B, P, H, dh]
  gK: Float32Array; // [B, P, Hkv, dh]
  gV: Float32Array; // [B, P, Hkv, dh]
}

export interface AttentionBackwardArgs {
  q: Float32Array; // [B, P, H, dh]
  k: Float32Array; // [B, P, Hkv, dh]
  v: Float32Array; // [B, P, Hkv, dh]
  pattern: Float32Array; // [B, H, P, P]
  gZ: Float32Array; // [B, P, H, dh]
  B: number;
  P: number;
  H: number;
  /** Key/value heads (default H). */
  Hkv?: number;
  dh: number;
}

export function attentionBackward(a: AttentionBackwardArgs): AttentionGrads {
  const { q, k, v, pattern, gZ, B, P, H, dh } = a;
  const Hkv = a.Hkv ?? H;
  const group = H / Hkv;
  const HD = H * dh;
  const KD = Hkv * dh;
  const gPattern = new Float32Array(B * H * P * P);
  const gScores = new Float32Array(B * H * P * P);
  const gQ = new Float32Array(B * P * HD);
  const gK = new Float32Array(B * P * KD);
  const gV = new Float32Array(B * P * KD);
  const scale = 1 / Math.sqrt(dh);
  const gRow = new Float64Array(P);
  for (let b = 0; b < B; b++)
    for (let h = 0; h < H; h++) {
      const kvh = Math.floor(h / group);
      for (let i = 0; i < P; i++) {
        const zo = (b * P + i) * HD + h * dh;
        const po = ((b * H + h) * P + i) * P;
        // d/d pattern[i, j] = gz_i · v_j (defined for masked j too: the hook's own gradient), and
        // d/d v_j += pattern[i, j] gz_i
        let dot = 0; // Σ_j p_ij g_ij, for the softmax backward
        for (let j = 0; j < P; j++) {
          const vo = (b * P + j) * KD + kvh * dh;
          let s = 0;
          for (let e = 0; e < dh; e++) s += gZ[zo + e] * v[vo + e];
          gPattern[po + j] = s;
          gRow[j] = s;
          const p = pattern[po + j];
          dot += p * s;
          if (p !== 0) for (let e = 0; e < dh; e++) gV[vo + e] += p * gZ[zo + e];
        }
        // softmax: d/d score_ij = p_ij (g_ij − Σ_k p_ik g_ik); then scores = q·k · scale for j ≤ i
        for (let j = 0; j <= i; j++) {
          const gs = pattern[po + j] * (gRow[j] - dot);
          gScores[po + j] = gs;
          if (gs === 0) continue;
          const ko = (b * P + j) * KD + kvh * dh;
          const c = gs * scale;
          for (let e = 0; e < dh; e++) {
            gQ[zo + e] += c * k[ko + e];
            gK[ko + e] += c * q[zo + e];
          }
        }
      }
    }
  return { gPattern, gScores, gQ, gK, gV };
}
