import { type Dim, TensorView } from "./tensor-view.ts";

/**
 * A dense, contiguous, row-major float32 tensor. The model and analyses work on the flat `data` (fast
 * loops, kernels); users index it by shape: `t.get(b, h, q, k)`, `t.select(dim, i)`, `t.slice(...)`,
 * `t.sum(dims)` / `t.mean(dims)` — `select` and `slice` are views sharing `data` (src/tensor/tensor-view.ts).
 * Dims may carry names (`withDims`), so reductions and selections can name them.
 */
export class Tensor {
  readonly data: Float32Array;
  readonly shape: readonly number[];
  /** A name per dim (e.g. ["batch", "pos", "d_model"]), or null. */
  readonly dims: readonly string[] | null;

  constructor(data: Float32Array, shape: readonly number[], dims: readonly string[] | null = null) {
    const n = shapeSize(shape);
    if (data.length !== n) {
      throw new Error(`Tensor data has ${data.length} elements but shape [${shape.join(", ")}] needs ${n}`);
    }
    if (dims && dims.length !== shape.length)
      throw new Error(`${dims.length} dim names [${dims.join(", ")}] for shape [${shape.join(", ")}]`);
    this.data = data;
    this.shape = shape;
    this.dims = dims;
  }

  static zeros(shape: readonly number[]): Tensor {
    return new Tensor(new Float32Array(shapeSize(shape)), shape);
  }

  static fromNested(values: NestedNumbers): Tensor {
    const shape: number[] = [];
    let v: NestedNumbers = values;
    while (Array.isArray(v)) {
      shape.push(v.length);
      v = v[0] as NestedNumbers;
    }
    const flat = (values as unknown as number[]).flat(Number.POSITIVE_INFINITY) as number[];
    return new Tensor(Float32Array.from(flat), shape);
  }

  get size(): number {
    return this.data.length;
  }

  get ndim(): number {
    return this.shape.length;
  }

  strides(): number[] {
    return stridesOf(this.shape);
  }

  /** Flat offset of a full index. */
  offset(...index: number[]): number {
    if (index.length !== this.shape.length) {
      throw new Error(`Index has ${index.length} dims, tensor has ${this.shape.length}`);
    }
    let off = 0;
    for (let i = 0; i < index.length; i++) {
      const n = this.shape[i];
      let ix = index[i];
      if (ix < 0) ix += n;
      if (ix < 0 || ix >= n) throw new Error(`Index ${index[i]} out of range for axis ${i} of size ${n}`);
      off = off * n + ix;
    }
    return off;
  }

  at(...index: number[]): number {
    return this.data[this.offset(...index)];
  }

  /** The element at a full index, e.g. `pattern.get(b, h, q, k)` (negative indices count from the end). */
  get(...index: number[]): number {
    return this.data[this.offset(...index)];
  }

  /** The same data with a name per dim. */
  withDims(dims: readonly string[]): Tensor {
    return new Tensor(this.data, this.shape, dims);
  }

  /** This tensor as a strided view (shares `data`). */
  view(): TensorView<Float32Array> {
    return TensorView.of(this.data, this.shape, this.dims);
  }

  /** Index `i` of one dim, that dim dropped (a view): `z.select("head", 2)` is TransformerLens' `z[:, :, 2]`. */
  select(dim: Dim, i: number): TensorView<Float32Array> {
    return this.view().select(dim, i);
  }

  /** `start:end:step` of one dim, Python's rules (a view). */
  slice(dim: Dim, start?: number, end?: number, step?: number): TensorView<Float32Array> {
    return this.view().slice(dim, start, end, step);
  }

  /** Sum of every element (float64), or over the given dims, which are dropped. */
  sum(): number;
  sum(dims: Dim | readonly Dim[]): Tensor;
  sum(dims?: Dim | readonly Dim[]): number | Tensor {
    return dims === undefined ? this.view().sum() : this.view().sum(dims);
  }

  /** Mean of every element (float64), or over the given dims, which are dropped. */
  mean(): number;
  mean(dims: Dim | readonly Dim[]): Tensor;
  mean(dims?: Dim | readonly Dim[]): number | Tensor {
    return dims === undefined ? this.view().mean() : this.view().mean(dims);
  }

  reshape(shape: readonly number[]): Tensor {
    return new Tensor(this.data, shape);
  }

  clone(): Tensor {
    return new Tensor(this.data.slice(), this.shape, this.dims);
  }

  /** Sub-tensor along axis 0 (a view sharing memory). */
  index0(i: number): Tensor {
    const inner = this.shape.slice(1);
    const n = shapeSize(inner);
    if (i < 0) i += this.shape[0];
    return new Tensor(this.data.subarray(i * n, (i + 1) * n), inner, this.dims?.slice(1) ?? null);
  }

  /** Nested JS arrays, for JSON output. */
  toNested(): NestedNumbers {
    return nest(this.data, this.shape);
  }
}

export type NestedNumbers = number | NestedNumbers[];

export function shapeSize(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) {
    if (!Number.isInteger(d) || d < 0)
      throw new Error(`Invalid dimension ${d} in shape [${shape.join(", ")}]`);
    n *= d;
  }
  return n;
}

export function stridesOf(shape: readonly number[]): number[] {
  const s = new Array<number>(shape.length);
  let acc = 1;
  for (let i = shape.length - 1; i >= 0; i--) {
    s[i] = acc;
    acc *= shape[i];
  }
  return s;
}

/** Flat row-major values over `shape` → nested arrays (a number for an empty shape). */
export function nest(values: ArrayLike<number>, shape: readonly number[], offset = 0): NestedNumbers {
  if (shape.length === 0) return values[offset];
  const stride = shapeSize(shape.slice(1));
  const out: NestedNumbers[] = [];
  for (let i = 0; i < shape[0]; i++) out.push(nest(values, shape.slice(1), offset + i * stride));
  return out;
}

/** The index along each axis of `shape` of row-major offset `flat`. */
export function unravelIndex(flat: number, shape: readonly number[]): number[] {
  return stridesOf(shape).map((stride, a) => Math.floor(flat / stride) % shape[a]);
}
