/**
 * float16 / bfloat16 <-> float32 conversion. Node 20 has no Float16Array, and checkpoints are
 * often stored in half precision, so we convert bit patterns ourselves.
 */

const scratchF32 = new Float32Array(1);
const scratchU32 = new Uint32Array(scratchF32.buffer);

/** IEEE binary16 bits of the float32 nearest to `x` (round to nearest, ties to even; overflow -> inf). */
export function float32ToF16Bits(x: number): number {
  scratchF32[0] = x;
  const bits = scratchU32[0];
  const sign = (bits >>> 16) & 0x8000;
  const exp32 = (bits >>> 23) & 0xff;
  let mant = bits & 0x7fffff;
  if (exp32 === 0xff) return sign | 0x7c00 | (mant !== 0 ? 0x200 : 0); // inf, or a quiet NaN
  const exp16 = exp32 - 127 + 15;
  if (exp16 >= 0x1f) return sign | 0x7c00;
  if (exp16 <= 0) {
    // Subnormal half (or zero): value = mant24 * 2^(exp16 - 14) units of 2^-24.
    if (exp16 < -10) return sign;
    mant |= 0x800000;
    const shift = 14 - exp16;
    const half = 2 ** (shift - 1);
    let rounded = Math.floor(mant / 2 ** shift);
    const rest = mant - rounded * 2 ** shift;
    if (rest > half || (rest === half && (rounded & 1) === 1)) rounded++;
    return sign | rounded; // a carry into bit 10 correctly yields the smallest normal
  }
  let rounded = (exp16 << 10) | (mant >>> 13);
  const rest = mant & 0x1fff;
  // A carry may ripple into the exponent, giving the next binade or inf: both correct.
  if (rest > 0x1000 || (rest === 0x1000 && (rounded & 1) === 1)) rounded++;
  return sign | rounded;
}

/** All 65536 binary16 values as float32, indexed by bit pattern (exact: every half is a float32). */
export const F16_TO_F32: Float32Array = (() => {
  const table = new Float32Array(65536);
  for (let bits = 0; bits < 65536; bits++) {
    const sign = bits & 0x8000 ? -1 : 1;
    const exp = (bits >>> 10) & 0x1f;
    const mant = bits & 0x3ff;
    if (exp === 0) table[bits] = sign * mant * 2 ** -24;
    else if (exp === 0x1f) table[bits] = mant === 0 ? sign * Number.POSITIVE_INFINITY : Number.NaN;
    else table[bits] = sign * (1 + mant / 1024) * 2 ** (exp - 15);
  }
  return table;
})();

/** bfloat16 bits of the float32 nearest to `x` (round to nearest, ties to even). */
export function float32ToBf16Bits(x: number): number {
  scratchF32[0] = x;
  const bits = scratchU32[0];
  if ((bits & 0x7f800000) === 0x7f800000 && (bits & 0x7fffff) !== 0) return (bits >>> 16) | 0x40; // quiet NaN
  return (bits + 0x7fff + ((bits >>> 16) & 1)) >>> 16;
}

/** Converts `src` half-precision bit patterns into `dst` (same length) as float32. */
export function decodeF16Into(src: Uint16Array, dst: Float32Array): void {
  for (let i = 0; i < src.length; i++) dst[i] = F16_TO_F32[src[i]];
}

/** bfloat16 is the top half of a float32, so decoding is a shift into the float32's bits. */
export function decodeBf16Into(src: Uint16Array, dst: Float32Array): void {
  const dstBits = new Uint32Array(dst.buffer, dst.byteOffset, dst.length);
  for (let i = 0; i < src.length; i++) dstBits[i] = src[i] << 16;
}
