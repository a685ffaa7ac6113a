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

export class Rotary {
  readonly invFreq: Float64Array;
  constructor(readonly cfg: RotaryConfig) {
    if (cfg.dim % 2 !== 0) throw new Error(`Rotary dimension must be even, got ${cfg.dim}`);
    this.invFreq = rotaryInvFreq(cfg);
  }

  /**
   * x [batch, pos, heads, dh] rotated to absolute positions firstPos..firstPos+pos-1 (a new array).
   * `inverse` rotates back (the transpose: the backward of the rotation).
   */
  apply(x: Float32Array, B: number, P: number, heads: number, dh: number, firstPos: number, inverse = false) {
    const half = this.cfg.dim / 2;
    const out = Float32Array.from(x);
    const cos = new Float64Array(half);
    const sin = new Float64Array(half);
    for (let p = 0; p < P; p++) {
      for (let i = 0; i < half; i++) {
        const angle = (firstPos + p) * this.invFreq[i];
        cos[i] = Math.cos(angle);
        sin[i] = inverse ? -Math.sin(angle) : Math.sin(angle);
      }
      for (let b = 0; b < B; b++)
        for (let h = 0; h < heads; h++) {
          const o = ((b * P + p) * heads + h) * dh;
          for (let i = 0; i < half; i++) {
            const a = x[o + i];
            const c = x[o + i + half];
            out[o + i] = a * cos[i] - c * sin[i];
            out[o + i + half] = c * cos[i] + a * sin[i];
          }
        }
    }
    return out;
  }
}
