/** LayerNorm pieces of the forward pass, kept apart so a hook on `hook_scale` can act between them. */

/**
 * Centre each row of x [rows, D] and compute its LayerNorm scale sqrt(mean(x_c^2) + eps) [rows].
 * Split from the division so a hook on `hook_scale` can replace the scale before it is used.
 */
export function centerAndScale(
  x: Float32Array,
  rows: number,
  D: number,
  eps: number,
): { centered: Float32Array; scale: Float32Array } {
  const centered = new Float32Array(rows * D);
  const scale = new Float32Array(rows);
  for (let r = 0; r < rows; r++) {
    const o = r * D;
    let mean = 0;
    for (let d = 0; d < D; d++) mean += x[o + d];
    mean /= D;
    let sq = 0;
    for (let d = 0; d < D; d++) {
      const c = x[o + d] - mean;
      centered[o + d] = c;
      sq += c * c;
    }
    scale[r] = Math.sqrt(sq / D + eps);
  }
  return { centered, scale };
}

/** Divides each row of `centered` [rows, D] by its scale, in place. */
export function divideRows(centered: Float32Array, scale: Float32Array, D: number): Float32Array {
  for (let r = 0; r < scale.length; r++) {
    const inv = 1 / scale[r];
    for (let d = 0; d < D; d++) centered[r * D + d] *= inv;
  }
  return centered;
}
