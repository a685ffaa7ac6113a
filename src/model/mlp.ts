/**
 * The MLP, in one place, forward and backward, for each kind the config names:
 *   plain: out = act(x @ W_in + b_in) @ W_out + b_out              (GPT-2's GELU MLP)
 *   gated: out = (act(x @ W_gate) * (x @ W_in + b_in)) @ W_out + b_out   (Llama's SiLU MLP; with the tanh
 *          GELU `gelu_new`, Gemma's GeGLU)
 * hook_pre is what the non-linearity reads (the gate of a gated MLP), hook_pre_linear the up projection,
 * hook_post what W_out reads (TransformerLens' names). The forward, backward and edge-masked passes call
 * these; a pass that records or edits an activation passes `fire`.
 */
import type { Activation } from "../tensor/activations.ts";
import { activationDerivative } from "../tensor/activations.ts";
import type { Kernels, LinearOp } from "../tensor/kernels.ts";
import { addArrays } from "./layouts.ts";

/** A block's MLP projections as kernel ops. */
export interface MlpOps {
  /** [D] → [d_mlp]: W_in (the up projection of a gated MLP). */
  mlpIn: LinearOp;
  /** [D] → [d_mlp]: W_gate of a gated MLP, else null. */
  mlpGate: LinearOp | null;
  /** [d_mlp] → [D]: W_out, with b_out. */
  mlpOut: LinearOp;
}

/** What the MLP's backward reads of a forward run. */
export interface MlpSaved {
  /** [rows, d_mlp] before the non-linearity (the gate of a gated MLP). */
  pre: Float32Array;
  /** [rows, d_mlp]: a gated MLP's up projection; null otherwise. */
  up: Float32Array | null;
}

/** The MLP's hooks, by their name after `mlp.hook_`. */
export type MlpHook = "pre" | "pre_linear" | "post";

export interface MlpForwardArgs {
  ops: MlpOps;
  kernels: Kernels;
  act: Activation;
  /** [rows, D]: the normalised input. */
  x: Float32Array;
  rows: number;
  /** Sees (and may replace) each activation as it is made; the value returned is the one used. */
  fire?: (hook: MlpHook, value: Float32Array) => Float32Array;
}

/** The MLP's output [rows, D] (with b_out), and what its backward needs. */
export function mlpForward(a: MlpForwardArgs): { out: Float32Array; saved: MlpSaved } {
  const { ops, rows, x } = a;
  const fire = a.fire ?? ((_hook: MlpHook, value: Float32Array) => value);
  const mlpIn = ops.mlpIn.forward(x, rows);
  let saved: MlpSaved;
  let post: Float32Array;
  if (ops.mlpGate) {
    const pre = fire("pre", ops.mlpGate.forward(x, rows));
    const up = fire("pre_linear", mlpIn);
    post = a.kernels.activation(a.act, pre);
    for (let i = 0; i < post.length; i++) post[i] *= up[i];
    saved = { pre, up };
  } else {
    const pre = fire("pre", mlpIn);
    post = a.kernels.activation(a.act, pre);
    saved = { pre, up: null };
  }
  return { out: ops.mlpOut.forward(fire("post", post), rows), saved };
}

export interface MlpGrads {
  /** d/d hook_pre */
  gPre: Float32Array;
  /** d/d hook_pre_linear (gated only). */
  gUp: Float32Array | null;
  /** d/d the MLP's input, [rows, D]: through both projections of a gated MLP. */
  gInput: Float32Array;
}

/**
 * From d/d hook_post [rows, d_mlp] to d/d the MLP's input. Gated: post = act(pre) * up, so
 * d/d pre = g · up · act'(pre) and d/d up = g · act(pre); the input's gradient sums both projections'.
 * act(pre) is recomputed with the kernels, as the forward computed it.
 */
export function mlpBackward(a: {
  ops: MlpOps;
  kernels: Kernels;
  act: Activation;
  saved: MlpSaved;
  gPost: Float32Array;
  rows: number;
}): MlpGrads {
  const { ops, act, gPost, rows } = a;
  const { pre, up } = a.saved;
  const gPre = new Float32Array(gPost.length);
  if (!ops.mlpGate || !up) {
    // Rows no gradient reaches (e.g. positions after the metric's) stay 0 without a derivative each.
    for (let i = 0; i < gPre.length; i++)
      if (gPost[i] !== 0) gPre[i] = gPost[i] * activationDerivative(act, pre[i]);
    return { gPre, gUp: null, gInput: ops.mlpIn.backward(gPre, rows) };
  }
  const activated = a.kernels.activation(act, pre);
  const gUp = new Float32Array(gPost.length);
  for (let i = 0; i < gPre.length; i++) {
    if (gPost[i] === 0) continue;
    gPre[i] = gPost[i] * up[i] * activationDerivative(act, pre[i]);
    gUp[i] = gPost[i] * activated[i];
  }
  return { gPre, gUp, gInput: addArrays(ops.mlpGate.backward(gPre, rows), ops.mlpIn.backward(gUp, rows)) };
}
