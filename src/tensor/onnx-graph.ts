import { createSession, loadNative } from "./onnx-runtime.ts";
import type { CompiledGraph, GraphArray, GraphDType, GraphFeed, OpGraph } from "./op-graph.ts";

/** ONNX opset of compiled graphs (ScatterND / ScatterElements with `reduction`, axes as inputs). */
const GRAPH_OPSET = 18;

/**
 * One onnxruntime session for a whole `OpGraph`: its nodes run in C++ with MLAS and the intra-op thread pool,
 * and only the declared inputs and outputs cross into JavaScript. Unlike the one-weight sessions, a graph
 * keeps its memory arena: it is compiled to be run many times at one size, and reusing its intermediates'
 * buffers (a TopK SAE step's [B, d_sae] arrays: about 40 MB at B 4,096, d_sae 512) instead of mapping fresh
 * pages each run took that step from 46 to 33 ms (docs/benchmarks.md).
 */
export function compileGraph(g: OpGraph, threads: number): CompiledGraph {
  const { ort, proto } = loadNative();
  const { onnx } = proto;
  const T = onnx.TensorProto.DataType;
  const elemType: Record<GraphDType, number> = {
    float32: T.FLOAT,
    int64: T.INT64,
    int32: T.INT32,
    bool: T.BOOL,
  };
  const valueInfo = (v: OpGraph["inputs"][number]) =>
    onnx.ValueInfoProto.create({
      name: v.name,
      type: {
        tensorType: {
          elemType: elemType[v.dtype],
          shape: { dim: v.dims.map((d) => (typeof d === "string" ? { dimParam: d } : { dimValue: d })) },
        },
      },
    });
  const AT = onnx.AttributeProto.AttributeType;
  const attribute = (name: string, value: number | number[] | string) =>
    typeof value === "string"
      ? onnx.AttributeProto.create({ name, type: AT.STRING, s: new TextEncoder().encode(value) })
      : Array.isArray(value)
        ? onnx.AttributeProto.create({ name, type: AT.INTS, ints: value })
        : onnx.AttributeProto.create({ name, type: AT.INT, i: value });
  const read = new Set(g.nodes.flatMap((n) => n.inputs));
  const graph = onnx.GraphProto.create({
    name: g.name,
    node: g.nodes.map((n, i) =>
      onnx.NodeProto.create({
        name: `${n.op}_${i}`,
        opType: n.op,
        input: n.inputs,
        output: n.outputs,
        attribute: Object.entries(n.attrs ?? {}).map(([k, v]) => attribute(k, v)),
      }),
    ),
    // Only the constants some node reads: a graph may declare a common set (onnxruntime warns of unused ones).
    initializer: (g.constants ?? [])
      .filter((c) => read.has(c.name))
      .map((c) =>
        onnx.TensorProto.create({
          name: c.name,
          dataType: elemType[c.dtype],
          dims: c.dims,
          ...(c.dtype === "int64" ? { int64Data: c.values } : { floatData: c.values }),
        }),
      ),
    input: g.inputs.map(valueInfo),
    output: g.outputs.map(valueInfo),
  });
  let session: ReturnType<typeof createSession> | null = createSession(graph, {
    threads,
    opset: GRAPH_OPSET,
    memArena: true,
  });
  const fetches = Object.fromEntries(g.outputs.map((o) => [o.name, null]));
  const declared = new Map(g.inputs.map((v) => [v.name, v]));
  return {
    run(feeds: Record<string, GraphFeed>): Record<string, GraphArray> {
      if (!session) throw new Error(`graph ${g.name}: run after dispose`);
      const tensors: Record<string, unknown> = {};
      for (const [name, v] of declared) {
        const f = feeds[name];
        if (!f) throw new Error(`graph ${g.name}: no feed for input ${name}`);
        tensors[name] = new ort.Tensor(v.dtype, f.data, f.dims);
      }
      const out = session.run(tensors, fetches, {});
      return Object.fromEntries(g.outputs.map((o) => [o.name, out[o.name].data as GraphArray]));
    },
    dispose() {
      session?.dispose();
      session = null;
    },
  };
}
