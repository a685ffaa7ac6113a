/**
 * Rotary position embeddings (RoPE) in Hugging Face's rotate-half layout: within a head, dimension i is
 * paired with i + dim/2 and the pair is rotated by position * invFreq[i]. Frequencies follow HF's
 * `_compute_default_rope_parameters`, with `linear` and `llama3` (`_compute_llama3_parameters`) scaling.
 */
import type { RotaryConfig } from "../weights/config.ts";

/** The rotation frequency of each dimension pair [dim / 2]. */
export function rotaryInvFreq(cfg: RotaryConfig): Float64Array {
  const half = cfg.dim / 2;
  const inv = new Float64Array(half);
  for (let i = 0; i < half; i++) inv[i] = 1 / cfg.theta ** ((2 * i) / cfg.dim);
  const s = cfg.scaling;
  if (!s) return inv;
  if (s.type === "linear") return inv.map((f) => f / s.factor);
  // llama3: long wavelengths slowed by `factor`, short ones kept, the band between interpolated smoothly.
  const lowFreqWavelen = s.originalMaxPositions / s.lowFreqFactor;
  const highFreqWavelen = s.originalMaxPositions / s.highFreqFactor;
  return inv.map((f) => {
    const wavelen = (2 * Math.PI) / f;
    if (wavelen < highFreqWavelen) return f;
    if (wavelen > lowFreqWavelen) return f / s.factor;
    const smooth =
      (s.originalMaxPositions / wavelen - s.lowFreqFactor) / (s.highFreqFactor - s.lowFreqFactor);
    return (1 - smooth) * (f / s.factor) + smooth * f;
  });
}

/** Where a block of q or k vectors [batch, pos, heads, dHead] sits: its first absolute position. */
export interface RotaryPlacement {
  batch: number;
  pos: number;
  heads: number;
  dHead: number;
  firstPos: number;
  /** Rotate back (the transpose: the backward of the rotation). */
  inverse?: boolean;
}

export class Rotary {
  readonly invFreq: Float64Array;
  /** cos and sin of position * invFreq, [positions, dim / 2], grown on demand. */
  private cos = new Float64Array(0);
  private sin = new Float64Array(0);

  constructor(readonly cfg: RotaryConfig) {
    if (cfg.dim % 2 !== 0) throw new Error(`Rotary dimension must be even, got ${cfg.dim}`);
    this.invFreq = rotaryInvFreq(cfg);
  }

  private tables(positions: number): { cos: Float64Array; sin: Float64Array } {
    const half = this.cfg.dim / 2;
    if (this.cos.length < positions * half) {
      const n = Math.max(positions, 2 * (this.cos.length / half), 64);
      this.cos = new Float64Array(n * half);
      this.sin = new Float64Array(n * half);
      for (let p = 0; p < n; p++)
        for (let i = 0; i < half; i++) {
          const angle = p * this.invFreq[i];
          this.cos[p * half + i] = Math.cos(angle);
          this.sin[p * half + i] = Math.sin(angle);
        }
    }
    return { cos: this.cos, sin: this.sin };
  }

  /** x [batch, pos, heads, dHead] rotated to absolute positions firstPos..firstPos+pos-1 (a new array). */
  rotate(x: Float32Array, at: RotaryPlacement): Float32Array {
    const { batch: B, pos: P, heads, dHead: dh, firstPos } = at;
    const half = this.cfg.dim / 2;
    const out = Float32Array.from(x);
    const { cos, sin } = this.tables(firstPos + P);
    const sign = at.inverse ? -1 : 1;
    for (let p = 0; p < P; p++) {
      const t = (firstPos + p) * half;
      for (let b = 0; b < B; b++)
        for (let h = 0; h < heads; h++) {
          const o = ((b * P + p) * heads + h) * dh;
          for (let i = 0; i < half; i++) {
            const a = x[o + i];
            const c = x[o + i + half];
            const sn = sign * sin[t + i];
            out[o + i] = a * cos[t + i] - c * sn;
            out[o + i + half] = c * cos[t + i] + a * sn;
          }
        }
    }
    return out;
  }
}
