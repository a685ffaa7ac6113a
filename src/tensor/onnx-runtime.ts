import { createRequire } from "node:module";

/**
 * onnxruntime-node's native binding, loaded once, and sessions built from an ONNX graph. We call the
 * binding's synchronous `run` directly: the public API only wraps it in a promise (setImmediate), and a
 * synchronous engine keeps hooks and the reference backend simple. The exact onnxruntime-node version is
 * pinned in package.json for that reason.
 */
const require = createRequire(import.meta.url);

export interface NativeSession {
  loadModel(buffer: ArrayBufferLike, offset: number, length: number, options: object): void;
  run(
    feeds: Record<string, unknown>,
    fetches: Record<string, null>,
    options: object,
  ): Record<string, { data: Float32Array; dims: readonly number[] }>;
  dispose(): void;
}
export interface OrtModule {
  Tensor: new (
    type: "float32" | "int32" | "int64" | "bool",
    data: Float32Array | Int32Array | BigInt64Array | Uint8Array,
    dims: readonly number[],
  ) => unknown;
}
export interface OnnxProto {
  onnx: {
    TensorProto: {
      create(o: object): unknown;
      DataType: { FLOAT: number; INT64: number; INT32: number; BOOL: number };
      DataLocation: { EXTERNAL: number };
    };
    NodeProto: { create(o: object): unknown };
    GraphProto: { create(o: object): unknown };
    ValueInfoProto: { create(o: object): unknown };
    ModelProto: { create(o: object): unknown; encode(m: unknown): { finish(): Uint8Array } };
    AttributeProto: {
      create(o: object): unknown;
      AttributeType: { INT: number; INTS: number; STRING: number };
    };
  };
}

let native: {
  ort: OrtModule;
  binding: { InferenceSession: new () => NativeSession };
  proto: OnnxProto;
} | null = null;

export function loadNative() {
  if (!native) {
    const ort = require("onnxruntime-node") as OrtModule;
    const bindingModule = require("onnxruntime-node/dist/binding.js") as {
      binding: { InferenceSession: new () => NativeSession };
      initOrt: () => void;
    };
    bindingModule.initOrt();
    native = { ort, binding: bindingModule.binding, proto: require("onnx-proto") as OnnxProto };
  }
  return native;
}

export interface SessionOptions {
  threads: number;
  opset?: number;
  /** In-memory "external data" the graph's initializers refer to by path. */
  externalData?: { path: string; data: Uint8Array }[];
  /** Keep onnxruntime's memory arena (see below); off unless asked. */
  memArena?: boolean;
}

export function createSession(graph: unknown, o: SessionOptions): NativeSession {
  const { threads, opset = 13, externalData = [], memArena = false } = o;
  const { binding, proto } = loadNative();
  const { onnx } = proto;
  const model = onnx.ModelProto.encode(
    onnx.ModelProto.create({
      irVersion: opset >= 20 ? 9 : opset >= 15 ? 8 : 7,
      opsetImport: [{ domain: "", version: opset }],
      graph,
    }),
  ).finish();
  const session = new binding.InferenceSession();
  session.loadModel(model.buffer, model.byteOffset, model.byteLength, {
    intraOpNumThreads: threads,
    interOpNumThreads: 1,
    graphOptimizationLevel: "all",
    executionMode: "sequential",
    // Each session's arena would keep its largest run's buffers for the model's lifetime: ~14 MB a
    // weight after `weight()` reads it back, 0.7 GB over GPT-2 medium's ~100 sessions after one 8x128
    // forward; without it forward times move by under 3 % (docs/benchmarks.md, Memory).
    enableCpuMemArena: memArena,
    // Spinning pool threads would steal the second core from the TypeScript work between calls.
    extra: { session: { intra_op: { allow_spinning: "0" } } },
    ...(externalData.length ? { externalData } : {}),
  });
  return session;
}
