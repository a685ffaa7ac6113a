/**
 * The training loop's input: batch `step` of an endless, seeded stream of activation rows. Two sources feed
 * it — a harvest held in memory (`inMemorySource`: each pass over the rows is one seeded shuffle of all of
 * them) and activation shards read from disk a few chunks at a time (`src/sae-train/shard-reader.ts`) — so
 * the loop itself neither knows nor cares where its rows live.
 */
import { mulberry32 } from "../util/random.ts";
import type { ActivationBuffer } from "./harvest.ts";

export interface ActivationSource {
  /** Rows in one pass over the data. */
  readonly rows: number;
  /** Width of the rows read (x) and predicted (y): equal for an SAE. */
  readonly dIn: number;
  readonly dOut: number;
  /** Mean of the predicted rows, summed in float64 in row order (b_dec starts there). */
  targetMean(): Float32Array;
  /** Batch `step` of `size` rows, [size, dIn] and [size, dOut] row-major (the same array for an SAE). */
  batch(step: number, size: number): { x: Float32Array; y: Float32Array };
}

/** Mean of the buffer's rows, in float64. */
export function rowMean(buf: ActivationBuffer): Float32Array {
  const acc = new Float64Array(buf.width);
  for (let r = 0; r < buf.rows; r++)
    for (let i = 0; i < buf.width; i++) acc[i] += buf.data[r * buf.width + i];
  return Float32Array.from(acc, (v) => v / buf.rows);
}

/** 0 … n−1 in a Fisher–Yates shuffle drawn from mulberry32(`seedWord`). */
export function seededPermutation(n: number, seedWord: number): Uint32Array {
  const perm = new Uint32Array(n);
  for (let i = 0; i < n; i++) perm[i] = i;
  const rng = mulberry32(seedWord >>> 0);
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor(rng() * (i + 1));
    const t = perm[i];
    perm[i] = perm[j];
    perm[j] = t;
  }
  return perm;
}

/**
 * The rows of batch `step`: positions step·B … step·B + B − 1 of an endless stream that visits the harvest
 * once per pass, each pass in a fresh seeded shuffle.
 */
export class BatchOrder {
  private cache = new Map<number, Uint32Array>();
  constructor(
    readonly rows: number,
    readonly seed: number,
  ) {}

  permutation(pass: number): Uint32Array {
    let perm = this.cache.get(pass);
    if (!perm) {
      perm = seededPermutation(this.rows, this.seed * 0x9e3779b1 + pass * 0x7f4a7c15 + 1);
      if (this.cache.size > 2) this.cache.delete(Math.min(...this.cache.keys()));
      this.cache.set(pass, perm);
    }
    return perm;
  }

  batch(step: number, size: number): Uint32Array {
    const out = new Uint32Array(size);
    for (let i = 0; i < size; i++) {
      const at = step * size + i;
      out[i] = this.permutation(Math.floor(at / this.rows))[at % this.rows];
    }
    return out;
  }
}

export function gatherRows(buf: ActivationBuffer, rows: Uint32Array): Float32Array {
  const out = new Float32Array(rows.length * buf.width);
  for (let r = 0; r < rows.length; r++)
    out.set(buf.data.subarray(rows[r] * buf.width, (rows[r] + 1) * buf.width), r * buf.width);
  return out;
}

/** A harvest in memory (x read, y predicted; the same buffer for an SAE), shuffled whole each pass. */
export function inMemorySource(
  data: { x: ActivationBuffer; y: ActivationBuffer },
  seed: number,
): ActivationSource {
  if (data.x.rows !== data.y.rows)
    throw new Error(`Input and output activations differ in rows: ${data.x.rows} vs ${data.y.rows}`);
  const order = new BatchOrder(data.x.rows, seed);
  return {
    rows: data.x.rows,
    dIn: data.x.width,
    dOut: data.y.width,
    targetMean: () => rowMean(data.y),
    batch(step, size) {
      const rows = order.batch(step, size);
      const x = gatherRows(data.x, rows);
      return { x, y: data.y === data.x ? x : gatherRows(data.y, rows) };
    },
  };
}
