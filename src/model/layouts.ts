/**
 * The layouts the block's pieces move activations between, in one place: per-head weights fused into one
 * projection, column groups split back, heads-first (for batched per-head products) and positions-first
 * (TransformerLens' [batch, pos, head, d_head]) orders.
 */

/** a + b, elementwise, in a new array. */
export function addArrays(a: Float32Array, b: Float32Array): Float32Array {
  const out = new Float32Array(a.length);
  for (let i = 0; i < a.length; i++) out[i] = a[i] + b[i];
  return out;
}

/** Per-head weights [heads_i, D, dh] (several) → [D, Σ heads_i * dh]: one product yields q | k | v. */
export function fuseHeads(Ws: Float32Array[], heads: number[], D: number, dh: number): Float32Array {
  const width = heads.reduce((a, b) => a + b, 0) * dh;
  const out = new Float32Array(D * width);
  let col = 0;
  Ws.forEach((W, which) => {
    for (let hh = 0; hh < heads[which]; hh++)
      for (let d = 0; d < D; d++) {
        const src = (hh * D + d) * dh;
        out.set(W.subarray(src, src + dh), d * width + col + hh * dh);
      }
    col += heads[which] * dh;
  });
  return out;
}

export function concat(parts: Float32Array[]): Float32Array {
  const out = new Float32Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

/** [rows, Σ widths] → one [rows, width_i] array per column group. */
export function splitColumns(x: Float32Array, rows: number, widths: number[]): Float32Array[] {
  const total = widths.reduce((a, b) => a + b, 0);
  let col = 0;
  return widths.map((w) => {
    const out = new Float32Array(rows * w);
    for (let r = 0; r < rows; r++) out.set(x.subarray(r * total + col, r * total + col + w), r * w);
    col += w;
    return out;
  });
}

/**
 * [B, N, H, dh] → [B, H * repeat, N, dh]: each head's rows contiguous, as batched products want them;
 * with `repeat` > 1 each head serves that many consecutive query heads (grouped-query attention).
 */
export function headsFirst(
  x: Float32Array,
  B: number,
  N: number,
  H: number,
  dh: number,
  repeat = 1,
): Float32Array {
  const out = new Float32Array(x.length * repeat);
  const HR = H * repeat;
  for (let b = 0; b < B; b++)
    for (let n = 0; n < N; n++)
      for (let hh = 0; hh < H; hh++) {
        const src = ((b * N + n) * H + hh) * dh;
        const row = x.subarray(src, src + dh);
        for (let g = 0; g < repeat; g++) out.set(row, ((b * HR + hh * repeat + g) * N + n) * dh);
      }
  return out;
}

/** [B, H, N, dh] → [B, N, H, dh]. */
export function positionsFirst(x: Float32Array, B: number, N: number, H: number, dh: number): Float32Array {
  const out = new Float32Array(x.length);
  for (let b = 0; b < B; b++)
    for (let hh = 0; hh < H; hh++)
      for (let n = 0; n < N; n++) {
        const src = ((b * H + hh) * N + n) * dh;
        out.set(x.subarray(src, src + dh), ((b * N + n) * H + hh) * dh);
      }
  return out;
}

/** The last of P rows of width W per batch element: [B, P, W] → [B, 1, W]. */
export function lastRows(x: Float32Array, B: number, P: number, W: number): Float32Array {
  const out = new Float32Array(B * W);
  for (let b = 0; b < B; b++) out.set(x.subarray(((b + 1) * P - 1) * W, (b + 1) * P * W), b * W);
  return out;
}
