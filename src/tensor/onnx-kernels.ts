import { availableParallelism } from "node:os";
import type { ActivationKind, Kernels, LinearOp } from "./kernels.ts";
import { compileGraph } from "./onnx-graph.ts";
import { createSession, loadNative, type NativeSession } from "./onnx-runtime.ts";
import { checkBmm, checkWeight } from "./reference-kernels.ts";

/**
 * onnxruntime-node kernels. Each weight becomes a one-node ONNX graph (Gemm with the weight as an
 * initializer), so MLAS prepacks it once; measured ~100-150 GFLOP/s on 2 cores versus ~20 for
 * tfjs-wasm (docs/kernels.md). Whole graphs (`graph`) compile to one session each (onnx-graph.ts).
 */
export interface OnnxKernelOptions {
  threads?: number;
}

export function createOnnxKernels(options: OnnxKernelOptions = {}): Kernels {
  const threads = options.threads ?? Math.min(availableParallelism(), 8);
  const bmmSessions: (NativeSession | null)[] = [null, null];
  const actSessions = new Map<ActivationKind, NativeSession>();
  return {
    name: "onnx",
    linear(W, inDim, outDim, b) {
      checkWeight(W, inDim, outDim, b);
      return new OnnxLinear(W, inDim, outDim, b ?? null, threads);
    },
    activation(kind, x) {
      if (x.length === 0) return new Float32Array(0);
      let session = actSessions.get(kind);
      if (!session) {
        session = createActivationSession(kind, threads);
        actSessions.set(kind, session);
      }
      const { ort } = loadNative();
      return session.run({ X: new ort.Tensor("float32", x, [x.length]) }, { Y: null }, {}).Y.data;
    },
    graph: (g) => compileGraph(g, threads),
    bmm(a, b, batch, m, k, n, transB) {
      checkBmm(a, b, batch, m, k, n);
      if (batch * m * n === 0) return new Float32Array(0);
      const i = transB ? 1 : 0;
      bmmSessions[i] ??= createBmmSession(transB, threads);
      const { ort } = loadNative();
      const out = bmmSessions[i].run(
        {
          A: new ort.Tensor("float32", a, [batch, m, k]),
          B: new ort.Tensor("float32", b, transB ? [batch, n, k] : [batch, k, n]),
        },
        { Y: null },
        {},
      );
      return out.Y.data;
    },
  };
}

/**
 * ONNX opset-20 Gelu (tanh approximation = GPT-2's gelu_new), Relu, or SiLU as x * Sigmoid(x); vectorised
 * by MLAS.
 */
function createActivationSession(kind: ActivationKind, threads: number): NativeSession {
  const { onnx } = loadNative().proto;
  const FLOAT = onnx.TensorProto.DataType.FLOAT;
  const vector = (name: string) =>
    onnx.ValueInfoProto.create({
      name,
      type: { tensorType: { elemType: FLOAT, shape: { dim: [{ dimParam: "n" }] } } },
    });
  const attribute =
    kind === "gelu_new"
      ? [
          onnx.AttributeProto.create({
            name: "approximate",
            type: onnx.AttributeProto.AttributeType.STRING,
            s: new TextEncoder().encode("tanh"),
          }),
        ]
      : [];
  const node =
    kind === "silu"
      ? [
          onnx.NodeProto.create({ opType: "Sigmoid", input: ["X"], output: ["S"] }),
          onnx.NodeProto.create({ opType: "Mul", input: ["X", "S"], output: ["Y"] }),
        ]
      : [
          onnx.NodeProto.create({
            opType: kind === "relu" ? "Relu" : "Gelu",
            input: ["X"],
            output: ["Y"],
            attribute,
          }),
        ];
  const graph = onnx.GraphProto.create({
    name: "activation",
    node,
    input: [vector("X")],
    output: [vector("Y")],
  });
  return createSession(graph, { threads, opset: 20 });
}

/** Y = A @ B (or A @ B^T) over a leading batch axis, all dimensions dynamic. */
function createBmmSession(transB: boolean, threads: number): NativeSession {
  const { onnx } = loadNative().proto;
  const FLOAT = onnx.TensorProto.DataType.FLOAT;
  const tensor3 = (name: string, dims: string[]) =>
    onnx.ValueInfoProto.create({
      name,
      type: { tensorType: { elemType: FLOAT, shape: { dim: dims.map((d) => ({ dimParam: d })) } } },
    });
  const node = transB
    ? [
        onnx.NodeProto.create({
          opType: "Transpose",
          input: ["B"],
          output: ["Bt"],
          attribute: [
            onnx.AttributeProto.create({
              name: "perm",
              type: onnx.AttributeProto.AttributeType.INTS,
              ints: [0, 2, 1],
            }),
          ],
        }),
        onnx.NodeProto.create({ opType: "MatMul", input: ["A", "Bt"], output: ["Y"] }),
      ]
    : [onnx.NodeProto.create({ opType: "MatMul", input: ["A", "B"], output: ["Y"] })];
  const graph = onnx.GraphProto.create({
    name: "bmm",
    node,
    input: [
      tensor3("A", ["batch", "m", "k"]),
      tensor3("B", transB ? ["batch", "n", "k"] : ["batch", "k", "n"]),
    ],
    output: [tensor3("Y", ["batch", "m", "n"])],
  });
  return createSession(graph, { threads });
}

/**
 * One weight held by onnxruntime. onnxruntime copies an initializer whatever the options (measured in
 * docs/benchmarks.md), so this op keeps no reference to the caller's array: `weight()` reads it back
 * exactly (identity rows through the product, bias fed as zeros) and the lazy transposed session for
 * the backward pass is built from that.
 */
class OnnxLinear implements LinearOp {
  /** null while lent: `restore` gives W back. */
  private fwd: NativeSession | null;
  private restore: (() => Float32Array) | null = null;
  private bwd: NativeSession | null = null;
  private readonly bias: Float32Array;

  constructor(
    W: Float32Array,
    readonly inDim: number,
    readonly outDim: number,
    b: Float32Array | null,
    private readonly threads: number,
  ) {
    this.bias = b ? Float32Array.from(b) : new Float32Array(outDim);
    this.fwd = createGemmSession(W, inDim, outDim, true, false, threads);
  }

  private session(): NativeSession {
    if (!this.fwd) {
      const W = (this.restore as () => Float32Array)();
      this.fwd = createGemmSession(W, this.inDim, this.outDim, true, false, this.threads);
      this.restore = null;
    }
    return this.fwd;
  }

  forward(x: Float32Array, rows: number): Float32Array {
    if (x.length !== rows * this.inDim) {
      throw new Error(`linear: input has ${x.length} elements, expected ${rows}x${this.inDim}`);
    }
    if (rows === 0) return new Float32Array(0);
    return runGemm(this.session(), x, rows, this.inDim, this.bias);
  }

  backward(dy: Float32Array, rows: number): Float32Array {
    if (dy.length !== rows * this.outDim) {
      throw new Error(`linear backward: got ${dy.length} elements, expected ${rows}x${this.outDim}`);
    }
    if (rows === 0) return new Float32Array(0);
    this.bwd ??= createGemmSession(this.weight(), this.inDim, this.outDim, false, true, this.threads);
    return runGemm(this.bwd, dy, rows, this.outDim, null);
  }

  lend(restore: () => Float32Array): void {
    this.fwd?.dispose();
    this.fwd = null;
    this.releaseBackward();
    this.restore = restore;
  }

  reclaim(): void {
    this.session();
  }

  /** onnxruntime's prepacked copy of W, counted as float32. */
  get weightBytes(): number {
    return this.fwd ? 4 * this.inDim * this.outDim : 0;
  }

  /** onnxruntime's copy of W^T for `backward`, counted as float32 (it prepacks about that much). */
  get backwardBytes(): number {
    return this.bwd ? 4 * this.inDim * this.outDim : 0;
  }

  releaseBackward(): void {
    this.bwd?.dispose();
    this.bwd = null;
  }

  weight(): Float32Array {
    if (!this.fwd) return (this.restore as () => Float32Array)();
    const { inDim, outDim } = this;
    const W = new Float32Array(inDim * outDim);
    const zeros = new Float32Array(outDim);
    // Identity rows in chunks of about 16 MB of output: 1·w + 0·… is w exactly in float32.
    const chunk = Math.max(1, Math.min(inDim, Math.floor((4 << 20) / outDim)));
    for (let r0 = 0; r0 < inDim; r0 += chunk) {
      const rows = Math.min(chunk, inDim - r0);
      const eye = new Float32Array(rows * inDim);
      for (let r = 0; r < rows; r++) eye[r * inDim + r0 + r] = 1;
      W.set(runGemm(this.session(), eye, rows, inDim, zeros), r0 * outDim);
    }
    return W;
  }

  dispose(): void {
    this.fwd?.dispose();
    this.fwd = null;
    this.restore = null;
    this.releaseBackward();
  }
}

function runGemm(
  session: NativeSession,
  x: Float32Array,
  rows: number,
  cols: number,
  bias: Float32Array | null,
): Float32Array {
  const { ort } = loadNative();
  const feeds: Record<string, unknown> = { A: new ort.Tensor("float32", x, [rows, cols]) };
  if (bias) feeds.C = new ort.Tensor("float32", bias, [bias.length]);
  return session.run(feeds, { Y: null }, {}).Y.data;
}

/** Y = A @ W + C, C fed with each run (or A @ W^T when `transposed`, for the backward pass). */
function createGemmSession(
  W: Float32Array,
  inDim: number,
  outDim: number,
  withBias: boolean,
  transposed: boolean,
  threads: number,
): NativeSession {
  const { onnx } = loadNative().proto;
  const FLOAT = onnx.TensorProto.DataType.FLOAT;
  const [aCols, yCols] = transposed ? [outDim, inDim] : [inDim, outDim];
  const bytes = (a: Float32Array) => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
  const initializer = [
    // Handed over as in-memory "external data" rather than copied into the model bytes; onnxruntime
    // still copies it (and prepacks it), so the caller may drop its array once the session exists.
    onnx.TensorProto.create({
      name: "B",
      dataType: FLOAT,
      dims: [inDim, outDim],
      dataLocation: onnx.TensorProto.DataLocation.EXTERNAL,
      externalData: [
        { key: "location", value: WEIGHT_FILE },
        { key: "offset", value: "0" },
        { key: "length", value: String(W.byteLength) },
      ],
    }),
  ];
  const inputs = withBias ? ["A", "B", "C"] : ["A", "B"];
  const attribute = transposed
    ? [onnx.AttributeProto.create({ name: "transB", type: onnx.AttributeProto.AttributeType.INT, i: 1 })]
    : [];
  const matrix = (name: string, cols: number) =>
    onnx.ValueInfoProto.create({
      name,
      type: { tensorType: { elemType: FLOAT, shape: { dim: [{ dimParam: "rows" }, { dimValue: cols }] } } },
    });
  const graph = onnx.GraphProto.create({
    name: "linear",
    node: [onnx.NodeProto.create({ opType: "Gemm", input: inputs, output: ["Y"], attribute })],
    initializer,
    input: withBias
      ? [
          matrix("A", aCols),
          onnx.ValueInfoProto.create({
            name: "C",
            type: { tensorType: { elemType: FLOAT, shape: { dim: [{ dimValue: outDim }] } } },
          }),
        ]
      : [matrix("A", aCols)],
    output: [matrix("Y", yCols)],
  });
  return createSession(graph, { threads, externalData: [{ path: WEIGHT_FILE, data: bytes(W) }] });
}

/** Name under which a Gemm graph refers to its in-memory weight. */
const WEIGHT_FILE = "weight.bin";
