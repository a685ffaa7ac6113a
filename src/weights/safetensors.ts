/**
 * safetensors reading and writing. Format: 8-byte little-endian header length N, N bytes of JSON
 * ({name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__"?: {...}}), then the data bytes;
 * offsets are relative to the start of the data. See https://github.com/huggingface/safetensors.
 *
 * The reader never loads the whole file: it parses the header, then reads each tensor on demand
 * with positioned reads into a fresh Float32Array, so peak memory is the float32 weights plus one
 * small conversion buffer.
 */
import { closeSync, fstatSync, openSync, readSync, writeSync } from "node:fs";
import { endianness } from "node:os";
import { writeFileAtomicWith } from "../util/atomic-write.ts";
import { decodeBf16Into, decodeF16Into, float32ToBf16Bits, float32ToF16Bits } from "./float-formats.ts";

/** Bytes per element of every dtype the safetensors spec defines (we read the float ones). */
const DTYPE_BYTES: Record<string, number> = {
  BOOL: 1,
  U8: 1,
  I8: 1,
  F8_E4M3: 1,
  F8_E5M2: 1,
  I16: 2,
  U16: 2,
  F16: 2,
  BF16: 2,
  I32: 4,
  U32: 4,
  F32: 4,
  I64: 8,
  U64: 8,
  F64: 8,
};

/** Dtypes we can convert to float32. */
export type SafetensorsFloatDtype = "F64" | "F32" | "F16" | "BF16";
/** Dtypes the writer produces. */
export type SafetensorsWriteDtype = "F32" | "F16" | "BF16";

export interface SafetensorsTensorInfo {
  dtype: string;
  shape: number[];
  /** Byte range [begin, end) relative to the start of the data section. */
  begin: number;
  end: number;
}

/** The safetensors crate refuses headers over 100 MB; a larger length means a corrupt file. */
const MAX_HEADER_BYTES = 100_000_000;
/** Read / conversion chunk: bounds the temporary buffer independent of tensor size. */
const CHUNK_BYTES = 16 * 1024 * 1024;

function corrupt(path: string, what: string): Error {
  return new Error(
    `Corrupt safetensors file ${path}: ${what} — re-download it (circuitscope download MODEL) or check the path`,
  );
}

function isLittleEndianHost(): boolean {
  return endianness() === "LE";
}

/** An open safetensors file: header parsed and validated, tensors read one at a time. */
export class SafetensorsReader {
  readonly path: string;
  readonly tensors: ReadonlyMap<string, SafetensorsTensorInfo>;
  readonly metadata: Readonly<Record<string, string>>;
  private fd: number | null;
  private readonly dataStart: number;

  private constructor(
    path: string,
    fd: number,
    dataStart: number,
    tensors: Map<string, SafetensorsTensorInfo>,
    metadata: Record<string, string>,
  ) {
    this.path = path;
    this.fd = fd;
    this.dataStart = dataStart;
    this.tensors = tensors;
    this.metadata = metadata;
  }

  /** Opens `path` and validates its header against the file size. Throws a clear error on corruption. */
  static open(path: string): SafetensorsReader {
    if (!isLittleEndianHost()) throw new Error("safetensors reading needs a little-endian machine");
    let fd: number;
    try {
      fd = openSync(path, "r");
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      throw new Error(
        code === "ENOENT"
          ? `Weights file not found: ${path} — check the path or download the model (circuitscope download MODEL)`
          : `Cannot open weights file ${path}: ${(err as Error).message}`,
      );
    }
    try {
      const { dataStart, tensors, metadata } = parseHeader(path, fd);
      return new SafetensorsReader(path, fd, dataStart, tensors, metadata);
    } catch (err) {
      closeSync(fd);
      throw err;
    }
  }

  /** Reads tensor `name` and converts it to a fresh float32 array (row-major, length = prod(shape)). */
  readFloat32(name: string): Float32Array {
    const info = this.info(name);
    const out = new Float32Array(info.shape.reduce((a, b) => a * b, 1));
    this.readFloat32Into(name, out, 0);
    return out;
  }

  /**
   * Reads `out.length` elements of tensor `name` from flat element `first` on, converted to float32 (an
   * embedding's rows without reading the whole matrix).
   */
  readFloat32Into(name: string, out: Float32Array, first: number): void {
    const info = this.info(name);
    const count = out.length;
    const total = info.shape.reduce((a, b) => a * b, 1);
    if (first < 0 || first + count > total) {
      throw new Error(
        `Elements [${first}, ${first + count}) are outside tensor "${name}" (${total} elements)`,
      );
    }
    const fd = this.requireOpen();
    const itemBytes = DTYPE_BYTES[info.dtype];
    const position = this.dataStart + info.begin + first * itemBytes;
    switch (info.dtype) {
      case "F32":
        this.readExact(fd, new Uint8Array(out.buffer, out.byteOffset, out.byteLength), position);
        break;
      case "F16":
      case "BF16": {
        const decode = info.dtype === "F16" ? decodeF16Into : decodeBf16Into;
        const chunk = new Uint16Array(Math.min(count, CHUNK_BYTES / 2));
        for (let start = 0; start < count; start += chunk.length) {
          const n = Math.min(chunk.length, count - start);
          const part = chunk.subarray(0, n);
          this.readExact(fd, new Uint8Array(part.buffer, 0, n * 2), position + start * 2);
          decode(part, out.subarray(start, start + n));
        }
        break;
      }
      case "F64": {
        const chunk = new Float64Array(Math.min(count, CHUNK_BYTES / 8));
        for (let start = 0; start < count; start += chunk.length) {
          const n = Math.min(chunk.length, count - start);
          this.readExact(fd, new Uint8Array(chunk.buffer, 0, n * 8), position + start * 8);
          for (let i = 0; i < n; i++) out[start + i] = chunk[i];
        }
        break;
      }
      default:
        throw new Error(
          `Tensor "${name}" in ${this.path} has dtype ${info.dtype}, which cannot be read as float32 ` +
            "(supported: F32, F16, BF16, F64) — convert the checkpoint to one of these",
        );
    }
  }

  /** Size and modification time of the open file, to notice it being replaced under a loaded model. */
  stat(): { size: number; mtimeMs: number } {
    const { size, mtimeMs } = fstatSync(this.requireOpen());
    return { size, mtimeMs };
  }

  private info(name: string): SafetensorsTensorInfo {
    const info = this.tensors.get(name);
    if (!info) throw new Error(`Tensor "${name}" is not in safetensors file ${this.path}`);
    return info;
  }

  close(): void {
    if (this.fd !== null) closeSync(this.fd);
    this.fd = null;
  }

  private requireOpen(): number {
    if (this.fd === null) throw new Error(`safetensors file ${this.path} is already closed`);
    return this.fd;
  }

  /** Fills `target` from `position`, in chunks (one readSync is capped near 2 GB). */
  private readExact(fd: number, target: Uint8Array, position: number): void {
    let done = 0;
    while (done < target.length) {
      const want = Math.min(CHUNK_BYTES, target.length - done);
      const got = readSync(fd, target, done, want, position + done);
      if (got === 0)
        throw corrupt(this.path, `unexpected end of file at byte ${position + done} (truncated?)`);
      done += got;
    }
  }
}

function parseHeader(
  path: string,
  fd: number,
): { dataStart: number; tensors: Map<string, SafetensorsTensorInfo>; metadata: Record<string, string> } {
  const fileSize = fstatSync(fd).size;
  if (fileSize < 8)
    throw corrupt(path, `file is only ${fileSize} bytes, shorter than the 8-byte header length`);
  const lengthBytes = Buffer.alloc(8);
  readSync(fd, lengthBytes, 0, 8, 0);
  const headerLength = lengthBytes.readBigUInt64LE(0);
  if (headerLength < 2n || headerLength > BigInt(MAX_HEADER_BYTES)) {
    throw corrupt(
      path,
      `header length ${headerLength} is not plausible (expected 2..${MAX_HEADER_BYTES} bytes)`,
    );
  }
  const n = Number(headerLength);
  if (8 + n > fileSize) {
    throw corrupt(path, `header length ${n} runs past the end of the ${fileSize}-byte file (truncated?)`);
  }
  const headerBytes = Buffer.alloc(n);
  readSync(fd, headerBytes, 0, n, 8);
  let header: unknown;
  try {
    header = JSON.parse(headerBytes.toString("utf8"));
  } catch (err) {
    throw corrupt(path, `header is not valid JSON (${(err as Error).message})`);
  }
  if (header === null || typeof header !== "object" || Array.isArray(header)) {
    throw corrupt(path, "header is not a JSON object");
  }

  const dataStart = 8 + n;
  const dataLength = fileSize - dataStart;
  const tensors = new Map<string, SafetensorsTensorInfo>();
  let metadata: Record<string, string> = {};
  for (const [name, raw] of Object.entries(header as Record<string, unknown>)) {
    if (name === "__metadata__") {
      if (raw !== null && typeof raw === "object") metadata = raw as Record<string, string>;
      continue;
    }
    tensors.set(name, validateEntry(path, name, raw, dataLength));
  }

  // Tensors must not overlap (the reference implementation requires them to tile the data exactly).
  const sorted = [...tensors.entries()].sort((a, b) => a[1].begin - b[1].begin || a[1].end - b[1].end);
  for (let i = 1; i < sorted.length; i++) {
    const [prevName, prev] = sorted[i - 1];
    const [name, info] = sorted[i];
    if (info.begin < prev.end) {
      throw corrupt(path, `tensors "${prevName}" and "${name}" overlap (byte ${info.begin} < ${prev.end})`);
    }
  }
  return { dataStart, tensors, metadata };
}

function validateEntry(path: string, name: string, raw: unknown, dataLength: number): SafetensorsTensorInfo {
  if (raw === null || typeof raw !== "object") throw corrupt(path, `entry for "${name}" is not an object`);
  const entry = raw as Record<string, unknown>;
  const { dtype, shape, data_offsets: offsets } = entry;
  if (typeof dtype !== "string" || !(dtype in DTYPE_BYTES)) {
    throw corrupt(path, `tensor "${name}" has unknown dtype ${JSON.stringify(dtype)}`);
  }
  if (!Array.isArray(shape) || !shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
    throw corrupt(path, `tensor "${name}" has invalid shape ${JSON.stringify(shape)}`);
  }
  if (
    !Array.isArray(offsets) ||
    offsets.length !== 2 ||
    !offsets.every((o) => Number.isSafeInteger(o) && o >= 0) ||
    offsets[0] > offsets[1]
  ) {
    throw corrupt(path, `tensor "${name}" has invalid data_offsets ${JSON.stringify(offsets)}`);
  }
  const [begin, end] = offsets as [number, number];
  const expectedBytes = (shape as number[]).reduce((a, b) => a * b, 1) * DTYPE_BYTES[dtype];
  if (end - begin !== expectedBytes) {
    throw corrupt(
      path,
      `tensor "${name}" data_offsets [${begin}, ${end}] hold ${end - begin} bytes but ` +
        `shape [${shape.join(", ")}] of ${dtype} needs ${expectedBytes}`,
    );
  }
  if (end > dataLength) {
    throw corrupt(
      path,
      `tensor "${name}" ends at data byte ${end} but the file has only ${dataLength} data bytes (truncated?)`,
    );
  }
  return { dtype, shape: shape as number[], begin, end };
}

/** Encodes float32 values as little-endian bytes of `dtype`. */
function encodeTensor(data: Float32Array, dtype: SafetensorsWriteDtype): Uint8Array {
  if (dtype === "F32") return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  const bits = new Uint16Array(data.length);
  const encode = dtype === "F16" ? float32ToF16Bits : float32ToBf16Bits;
  for (let i = 0; i < data.length; i++) bits[i] = encode(data[i]);
  return new Uint8Array(bits.buffer);
}

/**
 * Writes `tensors` (float32 data, converted to `dtype`) as a safetensors file. Writes a temporary
 * file beside `path` and renames it into place, so a crash never leaves a half-written `path`.
 */
export function writeSafetensors(
  path: string,
  tensors: Record<string, { shape: number[]; data: Float32Array }>,
  dtype: SafetensorsWriteDtype,
  metadata: Record<string, string> = { format: "pt" },
): void {
  if (!isLittleEndianHost()) throw new Error("safetensors writing needs a little-endian machine");
  const header: Record<string, unknown> = { __metadata__: metadata };
  let offset = 0;
  for (const [name, { shape, data }] of Object.entries(tensors)) {
    const count = shape.reduce((a, b) => a * b, 1);
    if (count !== data.length) {
      throw new Error(
        `writeSafetensors: tensor "${name}" has ${data.length} values but shape [${shape}] needs ${count}`,
      );
    }
    const bytes = count * DTYPE_BYTES[dtype];
    header[name] = { dtype, shape, data_offsets: [offset, offset + bytes] };
    offset += bytes;
  }
  let headerJson = JSON.stringify(header);
  // Pad with spaces so the data starts 8-byte aligned (allowed by the format, done by the reference writer).
  headerJson += " ".repeat((8 - ((8 + Buffer.byteLength(headerJson)) % 8)) % 8);
  const headerBytes = Buffer.from(headerJson, "utf8");
  const lengthBytes = Buffer.alloc(8);
  lengthBytes.writeBigUInt64LE(BigInt(headerBytes.length));

  writeFileAtomicWith(path, (tmpPath) => {
    const fd = openSync(tmpPath, "w");
    try {
      writeAll(fd, lengthBytes, 0);
      writeAll(fd, headerBytes, 8);
      let position = 8 + headerBytes.length;
      for (const { data } of Object.values(tensors)) {
        const bytes = encodeTensor(data, dtype);
        writeAll(fd, bytes, position);
        position += bytes.length;
      }
    } finally {
      closeSync(fd);
    }
  });
}

function writeAll(fd: number, bytes: Uint8Array, position: number): void {
  let done = 0;
  while (done < bytes.length) {
    const n = Math.min(CHUNK_BYTES, bytes.length - done);
    done += writeSync(fd, bytes, done, n, position + done);
  }
}
