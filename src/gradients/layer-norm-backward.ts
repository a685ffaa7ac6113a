import type { LayerNormParams } from "../model/weights.ts";

/**
 * Backward of TransformerLens' LayerNorm over rows of x [rows, D]: x_c = x - mean(x),
 * scale = sqrt(mean(x_c^2) + eps) (hook_scale), normalized = (x_c / scale) * w + b (hook_normalized; no
 * w, b once folded: LNPre). Given d/d normalized, returns d/d scale (hook_scale's own gradient) and the
 * total gradient into x, through both the centring and the scale.
 */
export function layerNormBackward(
  x: Float32Array, // [rows, D], the LN input as cached
  scale: Float32Array, // [rows]
  ln: LayerNormParams | null,
  gNormalized: Float32Array, // [rows, D]
  rows: number,
  D: number,
): { gInput: Float32Array; gScale: Float32Array } {
  const gInput = new Float32Array(rows * D);
  const gScale = new Float32Array(rows);
  const w = ln?.w.data ?? null;
  const y = new Float64Array(D); // x_c / scale
  const gy = new Float64Array(D); // d/d y
  for (let r = 0; r < rows; r++) {
    const o = r * D;
    let nonzero = false;
    for (let d = 0; d < D; d++) if (gNormalized[o + d] !== 0) nonzero = true;
    if (!nonzero) continue; // rows no gradient reaches (e.g. positions after the metric's)
    let mean = 0;
    for (let d = 0; d < D; d++) mean += x[o + d];
    mean /= D;
    const s = scale[r];
    let dotGyY = 0;
    for (let d = 0; d < D; d++) {
      y[d] = (x[o + d] - mean) / s;
      gy[d] = w ? gNormalized[o + d] * w[d] : gNormalized[o + d];
      dotGyY += gy[d] * y[d];
    }
    // y = x_c / s  ⇒  d/ds = -Σ gy·y / s
    const gS = -dotGyY / s;
    gScale[r] = gS;
    // d/dx_c = gy / s + d/ds · ds/dx_c, with ds/dx_c = x_c / (D s) = y / D
    let meanGxc = 0;
    for (let d = 0; d < D; d++) {
      gy[d] = gy[d] / s + (gS * y[d]) / D;
      meanGxc += gy[d];
    }
    meanGxc /= D;
    // x_c = x - mean(x)  ⇒  subtract the mean of the gradient
    for (let d = 0; d < D; d++) gInput[o + d] = gy[d] - meanGxc;
  }
  return { gInput, gScale };
}
