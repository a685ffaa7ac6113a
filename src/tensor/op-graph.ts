/**
 * A whole computation as plain data: ONNX operators by name (opset 18) wired by value names, for a backend
 * that can run such a graph in one call (`Kernels.graph`, onnxruntime). The few dtypes and attribute kinds
 * here are the ones the project's graphs use; an attribute number is an ONNX INT, an array of numbers INTS.
 */

export type GraphDType = "float32" | "int64" | "int32" | "bool";

export interface GraphValue {
  name: string;
  dtype: GraphDType;
  /** Fixed sizes as numbers, sizes known only at run time by a symbolic name. */
  dims: (number | string)[];
}

export interface GraphNode {
  op: string;
  inputs: string[];
  outputs: string[];
  attrs?: Record<string, number | number[] | string>;
}

/** A small constant baked into the graph (axes lists, scalars); one that no node reads is left out. */
export interface GraphConstant {
  name: string;
  dtype: "int64" | "float32";
  dims: number[];
  values: number[];
}

export interface OpGraph {
  name: string;
  inputs: GraphValue[];
  outputs: GraphValue[];
  nodes: GraphNode[];
  constants?: GraphConstant[];
}

export type GraphArray = Float32Array | Int32Array | BigInt64Array | Uint8Array;

export interface GraphFeed {
  data: GraphArray;
  dims: number[];
}

export interface CompiledGraph {
  /** Runs the graph on `feeds` (every input by name); returns every output by name. */
  run(feeds: Record<string, GraphFeed>): Record<string, GraphArray>;
  dispose(): void;
}

/** Builds a node; shorthand for graph definitions. */
export function node(op: string, inputs: string[], outputs: string[], attrs?: GraphNode["attrs"]): GraphNode {
  return attrs ? { op, inputs, outputs, attrs } : { op, inputs, outputs };
}
