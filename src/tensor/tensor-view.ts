/**
 * Shape-aware access to a row-major array: a strided view (`get(b, h, q, k)`, `select`, `slice`,
 * reductions over numbered or named dims, `toNested`) that shares memory with what it views. `select`
 * and `slice` only change offset, shape and strides, so a head's slice of `hook_z` is a view, not a copy;
 * `contiguous()` copies only when the view is strided.
 */
import { type NestedNumbers, stridesOf, Tensor } from "./tensor.ts";

export type Storage = Float32Array | Float64Array;
/** A dim by number (negative counts from the end) or by name, when the view carries dim names. */
export type Dim = number | string;

export class TensorView<S extends Storage = Storage> {
  constructor(
    /** The whole underlying array, shared with the viewed tensor. */
    readonly storage: S,
    readonly shape: readonly number[],
    readonly strides: readonly number[],
    readonly offset: number,
    /** A name per dim (e.g. ["batch", "head", "query", "key"]), or null. */
    readonly dims: readonly string[] | null = null,
  ) {
    if (dims && dims.length !== shape.length)
      throw new Error(`${dims.length} dim names [${dims.join(", ")}] for shape [${shape.join(", ")}]`);
  }

  /** A view of a whole contiguous row-major array. */
  static of<S extends Storage>(storage: S, shape: readonly number[], dims: readonly string[] | null = null) {
    return new TensorView(storage, shape, stridesOf(shape), 0, dims);
  }

  get ndim(): number {
    return this.shape.length;
  }

  get size(): number {
    return this.shape.reduce((a, b) => a * b, 1);
  }

  /** The axis number of a dim given by number (negative from the end) or by name. */
  axis(dim: Dim): number {
    if (typeof dim === "string") {
      const a = this.dims?.indexOf(dim) ?? -1;
      if (a < 0)
        throw new Error(
          this.dims
            ? `No dim named "${dim}": this tensor's dims are [${this.dims.join(", ")}]`
            : `No dim named "${dim}": this tensor has no dim names (give the dim's number, or name them with withDims)`,
        );
      return a;
    }
    const a = dim < 0 ? dim + this.ndim : dim;
    if (!Number.isInteger(a) || a < 0 || a >= this.ndim)
      throw new Error(`Dim ${dim} out of range for a ${this.ndim}-dim tensor [${this.shape.join(", ")}]`);
    return a;
  }

  /** Offset into `storage` of a full index (negative indices count from the end). */
  offsetOf(index: readonly number[]): number {
    if (index.length !== this.ndim)
      throw new Error(`Index has ${index.length} dims, tensor has ${this.ndim} [${this.shape.join(", ")}]`);
    let off = this.offset;
    for (let a = 0; a < index.length; a++) off += this.checkIndex(a, index[a]) * this.strides[a];
    return off;
  }

  private checkIndex(a: number, i: number): number {
    const n = this.shape[a];
    const ix = i < 0 ? i + n : i;
    if (!Number.isInteger(ix) || ix < 0 || ix >= n)
      throw new Error(`Index ${i} out of range for dim ${this.dimLabel(a)} of size ${n}`);
    return ix;
  }

  private dimLabel(a: number): string {
    return this.dims ? `${a} ("${this.dims[a]}")` : String(a);
  }

  get(...index: number[]): number {
    return this.storage[this.offsetOf(index)];
  }

  set(value: number, ...index: number[]): void {
    this.storage[this.offsetOf(index)] = value;
  }

  /** Index `i` of one dim, that dim dropped: TransformerLens' `t[:, i]` for dim 1. A view. */
  select(dim: Dim, i: number): TensorView<S> {
    const a = this.axis(dim);
    const ix = this.checkIndex(a, i);
    return new TensorView(
      this.storage,
      this.shape.filter((_, k) => k !== a),
      this.strides.filter((_, k) => k !== a),
      this.offset + ix * this.strides[a],
      this.dims?.filter((_, k) => k !== a) ?? null,
    );
  }

  /** `start:end:step` of one dim (Python's rules: negatives count from the end, bounds clamp). A view. */
  slice(dim: Dim, start = 0, end?: number, step = 1): TensorView<S> {
    const a = this.axis(dim);
    if (!Number.isInteger(step) || step < 1)
      throw new Error(`Slice step must be a positive integer, got ${step}`);
    const n = this.shape[a];
    const clamp = (i: number) => Math.min(n, Math.max(0, i < 0 ? i + n : i));
    const lo = clamp(start);
    const hi = clamp(end ?? n);
    const len = hi > lo ? Math.ceil((hi - lo) / step) : 0;
    return new TensorView(
      this.storage,
      this.shape.map((s, k) => (k === a ? len : s)),
      this.strides.map((s, k) => (k === a ? s * step : s)),
      this.offset + lo * this.strides[a],
      this.dims,
    );
  }

  /** Storage offsets of every element, in row-major order of this view. */
  *offsets(): Generator<number> {
    const n = this.size;
    if (n === 0) return;
    const idx = new Array<number>(this.ndim).fill(0);
    let off = this.offset;
    for (let k = 0; k < n; k++) {
      yield off;
      for (let a = this.ndim - 1; a >= 0; a--) {
        idx[a]++;
        off += this.strides[a];
        if (idx[a] < this.shape[a]) break;
        off -= idx[a] * this.strides[a];
        idx[a] = 0;
      }
    }
  }

  fill(value: number): this {
    for (const o of this.offsets()) this.storage[o] = value;
    return this;
  }

  /** Copies `source`'s values (same shape) into this view, e.g. a clean activation into a corrupted run. */
  assign(source: TensorView | Tensor): this {
    const src = source instanceof Tensor ? source.view() : source;
    if (src.shape.length !== this.ndim || src.shape.some((s, a) => s !== this.shape[a]))
      throw new Error(
        `Cannot assign shape [${src.shape.join(", ")}] to a view of shape [${this.shape.join(", ")}]`,
      );
    const from = src.offsets();
    for (const o of this.offsets()) this.storage[o] = src.storage[from.next().value as number];
    return this;
  }

  /** The values in row-major order, as a new Float32Array. */
  toArray(): Float32Array {
    const out = new Float32Array(this.size);
    let k = 0;
    for (const o of this.offsets()) out[k++] = this.storage[o];
    return out;
  }

  get isContiguous(): boolean {
    const want = stridesOf(this.shape);
    return this.shape.every((s, a) => s <= 1 || this.strides[a] === want[a]);
  }

  /** A Tensor of this view: sharing memory when the view is a contiguous float32 range, else a copy. */
  contiguous(): Tensor {
    const t =
      this.isContiguous && this.storage instanceof Float32Array
        ? new Tensor(this.storage.subarray(this.offset, this.offset + this.size), this.shape)
        : new Tensor(this.toArray(), this.shape);
    return this.dims ? t.withDims(this.dims) : t;
  }

  toNested(): NestedNumbers {
    const rec = (off: number, a: number): NestedNumbers => {
      if (a === this.ndim) return this.storage[off];
      const out: NestedNumbers[] = [];
      for (let i = 0; i < this.shape[a]; i++) out.push(rec(off + i * this.strides[a], a + 1));
      return out;
    };
    return rec(this.offset, 0);
  }

  /** The sum over every element (float64), or over the given dims (they are dropped). */
  sum(): number;
  sum(dims: Dim | readonly Dim[]): Tensor;
  sum(dims?: Dim | readonly Dim[]): number | Tensor {
    return this.reduce(dims, false);
  }

  /** The mean over every element (float64), or over the given dims (they are dropped). */
  mean(): number;
  mean(dims: Dim | readonly Dim[]): Tensor;
  mean(dims?: Dim | readonly Dim[]): number | Tensor {
    return this.reduce(dims, true);
  }

  private reduce(dims: Dim | readonly Dim[] | undefined, mean: boolean): number | Tensor {
    if (dims === undefined) {
      let s = 0;
      for (const o of this.offsets()) s += this.storage[o];
      return mean ? s / this.size : s;
    }
    const axes = new Set((Array.isArray(dims) ? dims : [dims as Dim]).map((d) => this.axis(d)));
    const keep = [...this.shape.keys()].filter((a) => !axes.has(a));
    // Reduced dims moved last: each output element sums one contiguous run of the permuted view.
    const order = [...keep, ...axes];
    const permuted = new TensorView(
      this.storage,
      order.map((a) => this.shape[a]),
      order.map((a) => this.strides[a]),
      this.offset,
    );
    const outShape = keep.map((a) => this.shape[a]);
    const nOut = outShape.reduce((a, b) => a * b, 1);
    const nIn = nOut === 0 ? 0 : permuted.size / nOut;
    const acc = new Float64Array(nOut);
    let k = 0;
    for (const o of permuted.offsets()) acc[Math.floor(k++ / nIn)] += this.storage[o];
    const out = new Tensor(
      Float32Array.from(acc, (s) => (mean ? s / nIn : s)),
      outShape,
    );
    return this.dims ? out.withDims(keep.map((a) => (this.dims as readonly string[])[a])) : out;
  }
}
