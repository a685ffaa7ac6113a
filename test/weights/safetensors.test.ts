import assert from "node:assert/strict";
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { mulberry32 } from "../../src/util/random.ts";
import { SafetensorsReader, writeSafetensors } from "../../src/weights/safetensors.ts";

const dir = mkdtempSync(join(tmpdir(), "cs-safetensors-"));
after(() => rmSync(dir, { recursive: true, force: true }));

// ---- Independent reference roundings (by nearest-value search, not bit manipulation) ----

/** Value of a positive binary16 bit pattern, straight from the IEEE definition. */
function halfValue(bits: number): number {
  const exp = bits >> 10;
  const mant = bits & 0x3ff;
  return exp === 0 ? mant * 2 ** -24 : (1024 + mant) * 2 ** (exp - 25);
}
const POSITIVE_HALVES = Array.from({ length: 0x7c00 }, (_, bits) => halfValue(bits)); // 0 .. 65504, increasing

/** Nearest binary16 value to x, ties to the even bit pattern, overflow to infinity. */
function referenceF16(x: number): number {
  if (Number.isNaN(x)) return Number.NaN;
  const sign = x < 0 || Object.is(x, -0) ? -1 : 1;
  const a = Math.abs(x);
  if (a >= 65520) return sign * Number.POSITIVE_INFINITY; // halfway to 2^16 rounds to even = overflow
  let lo = 0;
  let hi = POSITIVE_HALVES.length - 1;
  while (hi - lo > 1) {
    const mid = (lo + hi) >> 1;
    if (POSITIVE_HALVES[mid] <= a) lo = mid;
    else hi = mid;
  }
  const dLo = a - POSITIVE_HALVES[lo];
  const dHi = POSITIVE_HALVES[hi] - a;
  const pick = dLo < dHi || (dLo === dHi && lo % 2 === 0) || dLo === 0 ? lo : hi;
  return sign * POSITIVE_HALVES[pick];
}

/** Nearest bfloat16 value: the two float32s with 16 zero low bits around x, compared in float64. */
function referenceBf16(x: number): number {
  if (!Number.isFinite(x)) return x;
  const f = new Float32Array([x]);
  const u = new Uint32Array(f.buffer);
  const bits = u[0];
  u[0] = bits & 0xffff0000;
  const toward0 = f[0];
  u[0] = (bits & 0xffff0000) + 0x10000;
  const away = f[0];
  const d0 = Math.abs(x - toward0);
  const d1 = Math.abs(away - x);
  if (d0 < d1) return toward0;
  if (d1 < d0) return away;
  return ((bits >>> 16) & 1) === 0 ? toward0 : away;
}

function testValues(): Float32Array {
  const rng = mulberry32(7);
  const special = [
    0,
    1,
    -1,
    1 / 3,
    65504,
    65519,
    65520,
    -70000,
    2 ** -24,
    2 ** -25,
    2 ** -25 * 1.001,
    1.5 * 2 ** -24,
  ];
  const values = new Float32Array(20000);
  special.forEach((v, i) => {
    values[i] = v;
  });
  // Wide exponent range: half subnormals, normals, and overflow; plus float32 ties for bf16.
  for (let i = special.length; i < values.length; i++)
    values[i] = (rng() - 0.5) * 2 ** Math.floor(rng() * 56 - 36);
  return values;
}

test("F32 round-trips exactly, shapes and names preserved", () => {
  const path = join(dir, "f32.safetensors");
  const a = testValues();
  const b = Float32Array.from({ length: 6 }, (_, i) => i - 2.5);
  writeSafetensors(path, { a: { shape: [100, 200], data: a }, "x.b": { shape: [2, 3], data: b } }, "F32");
  const reader = SafetensorsReader.open(path);
  assert.deepEqual([...reader.tensors.keys()].sort(), ["a", "x.b"]);
  assert.deepEqual(reader.tensors.get("a")!.shape, [100, 200]);
  assert.deepEqual(reader.readFloat32("a"), a);
  assert.deepEqual(reader.readFloat32("x.b"), b);
  assert.throws(() => reader.readFloat32("nope"), /"nope" is not in/);
  reader.close();
  // Data begins 8-byte aligned, as the reference writer does.
  assert.equal(readFileSync(path).readBigUInt64LE(0) % 8n, 0n);
});

test("F16 round-trip gives the nearest-even binary16 value of each original", () => {
  const path = join(dir, "f16.safetensors");
  const values = testValues();
  writeSafetensors(path, { v: { shape: [values.length], data: values } }, "F16");
  const reader = SafetensorsReader.open(path);
  assert.equal(reader.tensors.get("v")!.dtype, "F16");
  const back = reader.readFloat32("v");
  reader.close();
  for (let i = 0; i < values.length; i++) {
    assert.equal(back[i], referenceF16(values[i]), `value ${values[i]} at ${i}`);
  }
  // IEEE facts: 1/3 -> 0.333251953125, 65520 overflows, 2^-25 ties to zero.
  assert.equal(back[3], 0.333251953125);
  assert.equal(back[6], Number.POSITIVE_INFINITY);
  assert.equal(back[9], 0);
  assert.equal(back[10], 2 ** -24);
  // File holds 2 bytes per value.
  const header = Number(readFileSync(path).readBigUInt64LE(0));
  assert.equal(readFileSync(path).length, 8 + header + 2 * values.length);
});

test("BF16 round-trip gives the nearest-even bfloat16 value of each original", () => {
  const path = join(dir, "bf16.safetensors");
  const values = testValues();
  writeSafetensors(path, { v: { shape: [values.length], data: values } }, "BF16");
  const reader = SafetensorsReader.open(path);
  const back = reader.readFloat32("v");
  reader.close();
  for (let i = 0; i < values.length; i++) {
    assert.equal(back[i], referenceBf16(values[i]), `value ${values[i]} at ${i}`);
  }
  assert.equal(back[3], 0.333984375); // 1/3 in bfloat16
});

test("F64 tensors (written by hand) are converted to float32", () => {
  const path = join(dir, "f64.safetensors");
  const values = [1.25, -3.5, 1 / 3];
  const data = Buffer.alloc(24);
  for (const [i, v] of values.entries()) data.writeDoubleLE(v, 8 * i);
  writeRaw(path, { d: { dtype: "F64", shape: [3], data_offsets: [0, 24] } }, data);
  const reader = SafetensorsReader.open(path);
  assert.deepEqual(reader.readFloat32("d"), Float32Array.from(values));
  reader.close();
});

/** Writes a safetensors file from a literal header object and data bytes. */
function writeRaw(path: string, header: unknown, data: Buffer): void {
  const json = Buffer.from(JSON.stringify(header));
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(json.length));
  writeFileSync(path, Buffer.concat([len, json, data]));
}

function assertCorrupt(path: string, what: RegExp): void {
  assert.throws(
    () => SafetensorsReader.open(path),
    (err: Error) => {
      assert.match(err.message, /^Corrupt safetensors file /);
      assert.ok(err.message.includes(path), "error names the file");
      assert.match(err.message, what);
      assert.match(err.message, /re-download it \(circuitscope download MODEL\) or check the path/);
      return true;
    },
  );
}

test("corrupt files give clear errors naming the file and the problem", () => {
  const good = join(dir, "good.safetensors");
  writeSafetensors(good, { w: { shape: [4, 4], data: new Float32Array(16).fill(1) } }, "F32");
  const bytes = readFileSync(good);
  const f32x4 = Buffer.alloc(16);

  const truncated = join(dir, "truncated.safetensors");
  writeFileSync(truncated, bytes.subarray(0, bytes.length - 10));
  assertCorrupt(
    truncated,
    /tensor "w" ends at data byte 64 but the file has only 54 data bytes \(truncated\?\)/,
  );

  const tiny = join(dir, "tiny.safetensors");
  writeFileSync(tiny, bytes.subarray(0, 5));
  assertCorrupt(tiny, /only 5 bytes/);

  const hugeLength = join(dir, "huge-length.safetensors");
  const copy = Buffer.from(bytes);
  copy.writeBigUInt64LE(2n ** 40n, 0);
  writeFileSync(hugeLength, copy);
  assertCorrupt(hugeLength, /header length 1099511627776 is not plausible/);

  const pastEnd = join(dir, "past-end.safetensors");
  const copy2 = Buffer.from(bytes);
  copy2.writeBigUInt64LE(BigInt(bytes.length), 0);
  writeFileSync(pastEnd, copy2);
  assertCorrupt(pastEnd, /runs past the end/);

  const badJson = join(dir, "bad-json.safetensors");
  const copy3 = Buffer.from(bytes);
  copy3[8] = "x".charCodeAt(0);
  writeFileSync(badJson, copy3);
  assertCorrupt(badJson, /header is not valid JSON/);

  const outOfRange = join(dir, "out-of-range.safetensors");
  writeRaw(outOfRange, { w: { dtype: "F32", shape: [4], data_offsets: [16, 32] } }, f32x4);
  assertCorrupt(outOfRange, /ends at data byte 32 but the file has only 16 data bytes/);

  const inconsistent = join(dir, "inconsistent.safetensors");
  writeRaw(inconsistent, { w: { dtype: "F32", shape: [2, 3], data_offsets: [0, 16] } }, f32x4);
  assertCorrupt(inconsistent, /hold 16 bytes but shape \[2, 3\] of F32 needs 24/);

  const badDtype = join(dir, "bad-dtype.safetensors");
  writeRaw(badDtype, { w: { dtype: "F17", shape: [4], data_offsets: [0, 16] } }, f32x4);
  assertCorrupt(badDtype, /unknown dtype "F17"/);

  const overlap = join(dir, "overlap.safetensors");
  writeRaw(
    overlap,
    {
      a: { dtype: "F32", shape: [3], data_offsets: [0, 12] },
      b: { dtype: "F32", shape: [2], data_offsets: [8, 16] },
    },
    f32x4,
  );
  assertCorrupt(overlap, /"a" and "b" overlap/);

  const notObject = join(dir, "not-object.safetensors");
  writeRaw(notObject, [1, 2], Buffer.alloc(0));
  assertCorrupt(notObject, /not a JSON object/);
});

test("integer tensors are listed but refused as float32 with a clear error; missing files too", () => {
  const path = join(dir, "int.safetensors");
  writeRaw(path, { i: { dtype: "I64", shape: [2], data_offsets: [0, 16] } }, Buffer.alloc(16));
  const reader = SafetensorsReader.open(path);
  assert.throws(() => reader.readFloat32("i"), /dtype I64, which cannot be read as float32/);
  reader.close();
  assert.throws(
    () => SafetensorsReader.open(join(dir, "absent.safetensors")),
    /Weights file not found: .*absent/,
  );
});

test("a failed write leaves no file behind", () => {
  const path = join(dir, "never.safetensors");
  assert.throws(
    () => writeSafetensors(path, { w: { shape: [3], data: new Float32Array(2) } }, "F32"),
    /has 2 values but shape \[3\] needs 3/,
  );
  assert.throws(() => readFileSync(path), /ENOENT/);
  assert.deepEqual(
    readdirSync(dir).filter((f) => f.includes("never")),
    [],
  );
});
